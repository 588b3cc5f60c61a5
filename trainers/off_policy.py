"""Truncated importance sampling for rollouts sampled by another engine (vLLM, a server).

A rollout engine and the trainer compute the same policy with different kernels and
precision, so the engine's log-probs (the behaviour policy that sampled the tokens)
differ from the trainer's, more so after a weight sync in bf16. PPO's ratio must
start from the trainer's own log-probs, and the difference is corrected by
importance sampling, truncated for bounded variance (TIS; TRL's
``vllm_importance_sampling_mode="token_truncate"`` with ``clip_max`` 3, verl's TIS):

    w_i = min(exp(log π_trainer(x_i) − log π_engine(x_i)), C)
    L_i = −w_i · min(ρ_i A_i, clip(ρ_i, 1 − ε_low, 1 + ε_high) A_i),   ρ_i = π_θ(x_i) / π_trainer(x_i)

Since ``w_i > 0``, ``w_i · min(ρA, clip(ρ)A) = min(ρ(w_i A), clip(ρ)(w_i A))``: the
correction is applied to each trained token's advantage, and ``π_trainer`` (one
no-grad forward of the step's sequences before the update, as TRL does) replaces
the engine's log-probs as the PPO ``old`` log-probs. The KL and entropy terms are
not weighted (as in TRL).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import torch

from rounds.trainers.loss import token_logprobs
from rounds.trainers.sequences import TrainSequence, collate, micro_batches


def truncated_importance_weights(
    trainer_logprobs: torch.Tensor, engine_logprobs: torch.Tensor, cap: float
) -> torch.Tensor:
    """TIS weights ``min(exp(log π_trainer − log π_engine), C)`` of tokens an engine sampled."""
    return torch.clamp(torch.exp(trainer_logprobs - engine_logprobs), max=cap)


def importance_corrected(
    policy: Any,
    sequences: Sequence[TrainSequence],
    *,
    cap: float,
    temperature: float,
    pad_id: int,
    device: Any,
    micro_batch_size: int,
    micro_batch_tokens: int | None = None,
    autocast: torch.dtype | None = None,
) -> tuple[list[TrainSequence], dict[str, float]]:
    """The sequences with the trainer's log-probs as ``old_logprobs`` and each trained
    token's advantage weighted by its TIS weight, and the step's mismatch statistics:
    ``engine_logprob_diff_mean`` (mean ``|log π_trainer − log π_engine|``),
    ``is_weight_mean`` and ``is_truncated_fraction`` over the trained tokens.

    The forward runs in the update's length-sorted micro-batches (``micro_batches``);
    the sequences come back in their input order."""
    corrected: dict[int, TrainSequence] = {}
    diff_sum = weight_sum = truncated = count = 0.0
    context = (
        torch.autocast(device_type="cuda", dtype=autocast)
        if autocast is not None
        else contextlib.nullcontext()
    )
    groups = micro_batches(
        [len(s.input_ids) for s in sequences],
        max_sequences=micro_batch_size,
        max_tokens=micro_batch_tokens,
    )
    for group in groups:
        chunk = [sequences[i] for i in group]
        batch = collate(chunk, pad_id=pad_id, device=device)
        targets = batch["targets"]
        with torch.no_grad(), context:
            trainer, _ = token_logprobs(
                policy, batch["input_ids"], batch["attention_mask"], targets, temperature
            )
        trainer = trainer.float()
        engine = batch["old_logprobs"][targets]
        ratio = torch.exp(trainer - engine)
        weights = truncated_importance_weights(trainer, engine, cap)
        diff_sum += float((trainer - engine).abs().sum())
        weight_sum += float(weights.sum())
        truncated += float((ratio > cap).sum())
        count += float(trainer.numel())
        rows, columns = targets.nonzero(as_tuple=True)  # row-major, as token_logprobs orders
        updates: list[dict[int, tuple[float, float]]] = [{} for _ in chunk]
        for row, column, logprob, weight in zip(
            rows.tolist(), columns.tolist(), trainer.tolist(), weights.tolist(), strict=True
        ):
            updates[row][column] = (logprob, weight)
        for index, sequence, update in zip(group, chunk, updates, strict=True):
            old = list(sequence.old_logprobs)
            advantages = list(sequence.advantages)
            for column, (logprob, weight) in update.items():
                old[column] = logprob
                advantages[column] *= weight
            corrected[index] = replace(sequence, old_logprobs=old, advantages=advantages)
    per_token = max(count, 1.0)
    return [corrected[i] for i in range(len(sequences))], {
        "engine_logprob_diff_mean": diff_sum / per_token,
        "is_weight_mean": weight_sum / per_token if count else 1.0,
        "is_truncated_fraction": truncated / per_token,
    }
