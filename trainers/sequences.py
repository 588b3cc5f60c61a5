"""Training sequences: one token sequence per episode, exactly as the policy produced it.

An episode's sequence is ``Σ_t prompt_ids_t + token_ids_t`` from its actions
(see ``rounds.agents.tokens``). Only sampled completion tokens carry loss; the
observation tokens (and an end-of-turn token the agent appended after a reply
cut at the length limit) are masked. Each trained token gets its turn's
advantage and its log-prob from sampling.

An update groups the step's sequences into micro-batches by length
(:func:`micro_batches`): longest first, each micro-batch padded only to its own
longest sequence and holding as many sequences as fit a token budget. The loss of
every micro-batch is divided by the whole step's token count, so the gradient
summed over micro-batches is the same whatever the grouping.
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


def trains_tokens(sequence: TrainSequence) -> bool:
    """Whether any token after the first carries loss (the first token is never predicted)."""
    return any(sequence.loss_mask[1:])


def micro_batches(
    lengths: Sequence[int], *, max_sequences: int, max_tokens: int | None
) -> list[list[int]]:
    """Indices of sequences of these lengths, grouped longest first into micro-batches.

    A micro-batch is padded to its own longest sequence, so it costs ``count × longest``
    tokens; it takes sequences while that stays within ``max_tokens`` (None: no budget)
    and ``count`` within ``max_sequences``. A sequence longer than the budget is a
    micro-batch alone. Sorting first keeps the padding to the length differences of
    neighbours; ties keep the input order, so the grouping is deterministic.
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    for index in order:
        current = batches[-1] if batches else []
        fits = (
            bool(current)
            and len(current) < max_sequences
            and (max_tokens is None or (len(current) + 1) * lengths[current[0]] <= max_tokens)
        )
        if fits:
            current.append(index)
        else:
            batches.append([index])
    return batches


def collate(sequences: Sequence[TrainSequence], *, pad_id: int, device: Any) -> dict[str, Any]:
    """A right-padded micro-batch: ``input_ids``, ``attention_mask``, ``loss_mask``,
    ``old_logprobs`` and ``advantages`` as ``(batch, width)`` tensors on ``device``, and
    ``targets``, the boolean ``(batch, width)`` mask of the tokens the loss scores (those
    with a loss weight, never the first of a row, which nothing predicts)."""
    import torch

    width = max(len(s.input_ids) for s in sequences)

    def padded(rows: list[list[Any]], value: Any, dtype: torch.dtype) -> torch.Tensor:
        return torch.tensor(
            [r + [value] * (width - len(r)) for r in rows], dtype=dtype, device=device
        )

    loss_mask = padded([s.loss_mask for s in sequences], 0, torch.float)
    targets = loss_mask != 0
    targets[:, 0] = False
    return {
        "input_ids": padded([s.input_ids for s in sequences], pad_id, torch.long),
        "attention_mask": padded([[1] * len(s.input_ids) for s in sequences], 0, torch.long),
        "loss_mask": loss_mask,
        "old_logprobs": padded([s.old_logprobs for s in sequences], 0.0, torch.float),
        "advantages": padded([s.advantages for s in sequences], 0.0, torch.float),
        "targets": targets,
    }
