"""Scoring a group of rollouts: reward shaping, then IGPO's information gain per turn."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rounds.agents.loop import Rollout
from rounds.shaping import RewardShaping, ShapedEpisode
from rounds.trainers.info_gain import answer_logprobs, information_gains, turn_contexts
from rounds.trainers.sequences import has_tokens


@dataclass
class Scored:
    """One episode after shaping: its return, outcome and per-turn rewards."""

    rollout: Rollout
    shaped: ShapedEpisode
    turn_rewards: list[float]
    info_gains: list[float] = field(default_factory=list)

    @property
    def total(self) -> float:
        """The episode's return ``R = R_outcome + Σ_t r~_t``."""
        return self.shaped.outcome + float(sum(self.turn_rewards))


def shape_group(group: list[Rollout], shaping: RewardShaping) -> list[Scored]:
    """Each episode's outcome and per-turn rewards after ``shaping``."""
    scored = []
    for rollout in group:
        shaped = shaping.shape(rollout.episode)
        scored.append(Scored(rollout, shaped, list(shaped.turn_rewards)))
    return scored


def add_information_gain(
    scored: list[Scored],
    policy: Any,
    tokenizer: Any,
    *,
    weight: float,
    kind: str,
    temperature: float,
) -> None:
    """IGPO: add ``weight · (p_t − p_{t−1})`` to each turn's reward, where ``p_t`` is the policy's
    probability of the env's answer (``info["answer"]`` at reset) after turn ``t``.

    Episodes without an answer or without sampled tokens are left as they are.
    """
    for item in scored:
        answer = (item.rollout.episode.meta.get("reset_info") or {}).get("answer")
        contexts = turn_contexts(item.rollout)
        if not answer or not contexts or not has_tokens(item.rollout):
            continue
        answer_ids = tokenizer(str(answer), add_special_tokens=False).input_ids
        policy.eval()
        try:
            logps = answer_logprobs(
                policy,
                contexts,
                answer_ids,
                pad_id=int(tokenizer.pad_token_id),
                temperature=temperature,
            )
        finally:
            policy.train()
        item.info_gains = information_gains(logps, kind=kind)
        for t, gain in enumerate(item.info_gains):
            item.turn_rewards[t] += weight * gain
