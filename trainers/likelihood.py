"""Likelihood rewards from the policy itself: RLPR and SAR, on the trainer's one teacher-forcing scorer.

Both teacher-force a text after a context with the policy, through
:func:`rounds.trainers.info_gain.answer_token_logprobs` — the scorer IGPO uses — and turn the
per-token log-probabilities into a reward component:

- **RLPR** (Yu et al., 2025, "RLPR: Extrapolating RLVR to General Domains without
  Verifiers", arXiv:2506.18254): where no verifier exists, the outcome reward is the
  policy's mean per-token *probability* of the reference answer ``y*`` after the
  episode, ``r = (1/|y*|) Σ_i π(y*_i | context, y*_<i)``; debiased by the same probability
  without the episode's reasoning (here: after the first prompt only), ``r̂ = clip(r − r', 0,
  1)``; stabilised by dropping groups whose reward standard deviation is below ``β``, an
  exponential moving average of the batches' mean standard deviation.
- **SAR** (Han et al., 2025, "Self-Aligned Reward: Towards Effective and Efficient
  Reasoners", arXiv:2509.05489): the relative perplexity difference of the final answer ``a``
  with and without the question ``q``, ``R_SA = clip((ppl(a) − ppl(a|q)) / ppl(a), −1, 1)``
  with ``ppl = exp(−mean log π)``: high for a concise answer that depends on the question.

Each is a named component (``rlpr``, ``sar``) added with its weight to the episode's last
turn, like any other turn-reward component. Cost: RLPR two teacher-forced passes per
episode (one for the debiasing baseline), SAR two (with and without the question).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field


class LikelihoodRewards(BaseModel):
    """Config block ``likelihood``: RLPR and SAR weights and RLPR's stabilising settings."""

    model_config = ConfigDict(extra="forbid")

    rlpr_weight: float = Field(
        default=0.0, description="Weight of RLPR's probability reward (0: off)."
    )
    rlpr_debias: bool = Field(
        default=True, description="Subtract the answer's probability without the episode."
    )
    rlpr_std_filter: bool = Field(
        default=True,
        description="Drop groups whose RLPR reward std is below the EMA threshold β.",
    )
    rlpr_ema: float = Field(
        default=0.99, ge=0.0, lt=1.0, description="Decay λ of the std threshold's moving average."
    )
    sar_weight: float = Field(default=0.0, description="Weight of SAR (0: off).")


# ------------------------------------------------------------------------- the formulas


def probability_reward(token_logprobs: Sequence[float]) -> float:
    """RLPR's PR: the mean per-token probability ``(1/|y|) Σ_i exp(log π_i)`` (an arithmetic mean
    of probabilities, robust to one unlikely token, unlike the sequence likelihood)."""
    if not token_logprobs:
        raise ValueError("probability_reward needs at least one token")
    return float(np.mean(np.exp(np.asarray(token_logprobs, dtype=float))))


def debiased_reward(reward: float, baseline: float) -> float:
    """RLPR's debiasing: ``clip(r − r', 0, 1)``, ``r'`` the answer's probability without reasoning."""
    return float(min(1.0, max(0.0, reward - baseline)))


def perplexity(token_logprobs: Sequence[float]) -> float:
    """``ppl = exp(−(1/n) Σ_i log π_i)``."""
    if not token_logprobs:
        raise ValueError("perplexity needs at least one token")
    return float(math.exp(-float(np.mean(token_logprobs))))


def self_aligned_reward(
    answer_logprobs: Sequence[float], conditioned_logprobs: Sequence[float]
) -> float:
    """SAR: ``clip((ppl(a) − ppl(a|q)) / ppl(a), −1, 1)`` from the answer's token log-probs alone
    and after the question."""
    standalone = perplexity(answer_logprobs)
    return float(max(-1.0, min(1.0, (standalone - perplexity(conditioned_logprobs)) / standalone)))


class StdFilter:
    """RLPR's standard-deviation filtering with an adaptive threshold.

    A group whose rewards' standard deviation is below ``β`` is dropped (too easy or too
    hard to rank); after each batch ``β ← λ β + (1 − λ) · mean std`` of the batch's groups.
    The first batch sets ``β`` to its mean std.
    """

    def __init__(self, ema: float = 0.99) -> None:
        self.ema = ema
        self.threshold: float | None = None

    def keep(self, groups: Sequence[Sequence[float]]) -> list[bool]:
        """Which groups to train on (against the threshold before this batch), then update it."""
        stds = [float(np.std(g)) for g in groups]
        if not stds:
            return []
        keep = [True] * len(stds) if self.threshold is None else [s >= self.threshold for s in stds]
        mean = float(np.mean(stds))
        self.threshold = (
            mean if self.threshold is None else self.ema * self.threshold + (1 - self.ema) * mean
        )
        return keep


# ------------------------------------------------------------------------- in the trainer


def add_likelihood_rewards(
    scored: Sequence[Any],
    policy: Any,
    tokenizer: Any,
    settings: LikelihoodRewards,
    *,
    temperature: float,
) -> dict[str, float]:
    """Add ``rlpr`` and ``sar`` (weighted) to each episode's last turn reward and write the raw
    values into that turn's ``info``; returns their means and the teacher-forced passes run."""
    from rounds.trainers.info_gain import answer_token_logprobs, turn_contexts

    rlpr: list[float] = []
    sar: list[float] = []
    passes = 0
    pad = int(tokenizer.pad_token_id)
    policy.eval()
    try:
        for item in scored:
            rollout = item.rollout
            contexts = turn_contexts(rollout)
            if not contexts or not item.turn_rewards:
                continue
            last = rollout.episode.turns[len(item.turn_rewards) - 1]
            if settings.rlpr_weight:
                answer = (rollout.episode.meta.get("reset_info") or {}).get("answer")
                if answer:
                    ids = tokenizer(str(answer), add_special_tokens=False).input_ids
                    after, before = answer_token_logprobs(
                        policy,
                        [contexts[-1], contexts[0]],
                        ids,
                        pad_id=pad,
                        temperature=temperature,
                    )
                    passes += 2
                    value = probability_reward(after)
                    if settings.rlpr_debias:
                        value = debiased_reward(value, probability_reward(before))
                    last.info["rlpr"] = value
                    item.turn_rewards[-1] += settings.rlpr_weight * value
                    rlpr.append(value)
            if settings.sar_weight:
                reply = list(rollout.actions[len(contexts) - 1].token_ids or [])
                if reply:
                    bos = [
                        int(
                            tokenizer.eos_token_id
                            if tokenizer.bos_token_id is None
                            else tokenizer.bos_token_id
                        )
                    ]
                    alone, conditioned = answer_token_logprobs(
                        policy, [bos, contexts[-1]], reply, pad_id=pad, temperature=temperature
                    )
                    passes += 2
                    value = self_aligned_reward(alone, conditioned)
                    last.info["sar"] = value
                    item.turn_rewards[-1] += settings.sar_weight * value
                    sar.append(value)
    finally:
        policy.train()
    stats = {"likelihood_passes": float(passes)}
    if rlpr:
        stats["rlpr_mean"] = float(np.mean(rlpr))
    if sar:
        stats["sar_mean"] = float(np.mean(sar))
    return stats
