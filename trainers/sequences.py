"""Training sequences: one token sequence per episode, exactly as the policy produced it.

An episode's sequence is ``Σ_t prompt_ids_t + token_ids_t`` from its actions
(see ``rounds.agents.tokens``). Only sampled completion tokens carry loss; the
observation tokens (and an end-of-turn token the agent appended after a reply
cut at the length limit) are masked. Each trained token gets its turn's
advantage and its log-prob from sampling.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rounds.agents.loop import Rollout


@dataclass
class TrainSequence:
    """One episode, ready to train on."""

    input_ids: list[int]
    loss_mask: list[int]
    old_logprobs: list[float]
    advantages: list[float]
    turn_of_token: list[int]
    """The turn each token belongs to (-1 for prompt/observation tokens)."""


def has_tokens(rollout: Rollout) -> bool:
    """Whether the episode can be trained on: a local model acted and never rebuilt its context."""
    acted = [a for a in rollout.actions if a.token_ids]
    return bool(acted) and not any(a.context_reset for a in rollout.actions)


def build_sequence(rollout: Rollout, turn_advantages: Sequence[float]) -> TrainSequence:
    """The episode's token sequence with loss mask, sampled log-probs and per-token advantages.

    Raises:
        ValueError: the episode has no model tokens, or its context was rebuilt mid-episode.
    """
    if not has_tokens(rollout):
        raise ValueError(
            "episode has no trainable token sequence (no model tokens, or a rebuilt context)"
        )
    ids: list[int] = []
    mask: list[int] = []
    logprobs: list[float] = []
    advantages: list[float] = []
    turns: list[int] = []
    for t, action in enumerate(rollout.actions):
        if not action.token_ids:
            continue  # the agent ended the episode or failed: no tokens this turn
        prompt = action.prompt_ids or []
        ids += prompt
        mask += [0] * len(prompt)
        logprobs += [0.0] * len(prompt)
        advantages += [0.0] * len(prompt)
        turns += [-1] * len(prompt)
        sampled = action.sampled_mask or [1] * len(action.token_ids)
        advantage = float(turn_advantages[t]) if t < len(turn_advantages) else 0.0
        ids += action.token_ids
        mask += sampled
        logprobs += list(action.logprobs or [0.0] * len(action.token_ids))
        advantages += [advantage if m else 0.0 for m in sampled]
        turns += [t] * len(action.token_ids)
    return TrainSequence(ids, mask, logprobs, advantages, turns)


def collate(sequences: Sequence[TrainSequence], *, pad_id: int, device: Any) -> dict[str, Any]:
    """A right-padded micro-batch: ``input_ids``, ``attention_mask``, ``loss_mask``,
    ``old_logprobs`` and ``advantages`` as ``(batch, width)`` tensors on ``device``."""
    import torch

    width = max(len(s.input_ids) for s in sequences)

    def padded(rows: list[list[Any]], value: Any, dtype: torch.dtype) -> torch.Tensor:
        return torch.tensor(
            [r + [value] * (width - len(r)) for r in rows], dtype=dtype, device=device
        )

    return {
        "input_ids": padded([s.input_ids for s in sequences], pad_id, torch.long),
        "attention_mask": padded([[1] * len(s.input_ids) for s in sequences], 0, torch.long),
        "loss_mask": padded([s.loss_mask for s in sequences], 0, torch.float),
        "old_logprobs": padded([s.old_logprobs for s in sequences], 0.0, torch.float),
        "advantages": padded([s.advantages for s in sequences], 0.0, torch.float),
    }
