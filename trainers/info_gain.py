"""IGPO's policy-side information gain: how much each turn raised the policy's belief in the answer.

After turn ``t`` the policy is teacher-forced on the ground-truth answer
(``info["answer"]``, e.g. the diagnosis) as its next reply:

    p_t = exp( mean_j log π(ans_j | context_t, ans_<j) )

where ``context_t`` is the episode's token sequence up to the prompt of turn
``t``. Turn ``t``'s gain is ``p_{t+1} − p_t`` (``kind="prob"``) or
``log p_{t+1} − log p_t`` (``kind="logprob"``); the last turn, which answers, earns
the outcome reward instead. All contexts of a batch go through one no-grad pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from rounds.agents.loop import Rollout
from rounds.models.attention import shape_stable_attention


def turn_contexts(rollout: Rollout) -> list[list[int]]:
    """``context_t`` for each turn: the sequence up to and including turn ``t``'s prompt tokens."""
    contexts: list[list[int]] = []
    sequence: list[int] = []
    for action in rollout.actions:
        if not action.token_ids:
            break
        sequence = sequence + list(action.prompt_ids or [])
        contexts.append(sequence)
        sequence = sequence + list(action.token_ids)
    return contexts


def answer_logprobs(
    model: Any,
    contexts: Sequence[list[int]],
    answer_ids: list[int],
    *,
    pad_id: int,
    temperature: float = 1.0,
    batch_size: int = 16,
) -> list[float]:
    """Mean log-prob of ``answer_ids`` after each context (see :func:`answer_token_logprobs`)."""
    rows = answer_token_logprobs(
        model, contexts, answer_ids, pad_id=pad_id, temperature=temperature, batch_size=batch_size
    )
    return [sum(row) / len(row) for row in rows]


def answer_token_logprobs(
    model: Any,
    contexts: Sequence[list[int]],
    answer_ids: list[int],
    *,
    pad_id: int,
    temperature: float = 1.0,
    batch_size: int = 16,
) -> list[list[float]]:
    """Per-token log-probs of ``answer_ids`` teacher-forced after each context: the trainer's
    one teacher-forcing scorer (IGPO's gain, RLPR and SAR all read it). One no-grad forward
    per batch.

    Rows are left-padded (with explicit position ids) so every answer ends the row, and
    logits are computed only at the answer's positions (``logits_to_keep``): a long
    context costs its forward pass, not a full-vocabulary tensor per position.
    """
    results: list[list[float]] = []
    device = next(model.parameters()).device
    n = len(answer_ids)
    targets = torch.tensor(answer_ids, device=device)
    for start in range(0, len(contexts), batch_size):
        chunk = [list(c) + answer_ids for c in contexts[start : start + batch_size]]
        width = max(len(c) for c in chunk)
        ids = torch.tensor([[pad_id] * (width - len(c)) + c for c in chunk], device=device)
        attention = torch.tensor(
            [[0] * (width - len(c)) + [1] * len(c) for c in chunk], device=device
        )
        positions = (attention.cumsum(-1) - 1).clamp(min=0)
        with torch.no_grad(), shape_stable_attention():
            try:
                logits = model(
                    input_ids=ids,
                    attention_mask=attention,
                    position_ids=positions,
                    logits_to_keep=n + 1,
                ).logits
            except TypeError:  # a model whose forward has no logits_to_keep
                logits = model(
                    input_ids=ids, attention_mask=attention, position_ids=positions
                ).logits[:, -(n + 1) :]
        # The logits before each answer token: positions width-n-1 .. width-2.
        log_probs = torch.log_softmax(logits[:, :n].float() / temperature, dim=-1)
        chosen = log_probs.gather(-1, targets.expand(len(chunk), n)[..., None]).squeeze(-1)
        results += [[float(v) for v in row] for row in chosen]
    return results


def information_gains(answer_logps: Sequence[float], *, kind: str = "prob") -> list[float]:
    """Per-turn gains from the answer's log-probs after each context: ``p_{t+1} − p_t``.

    The last context has no successor; its turn gets 0 (it earns the outcome).
    """
    values = (
        [float(torch.tensor(lp).exp()) for lp in answer_logps]
        if kind == "prob"
        else list(answer_logps)
    )
    if kind not in ("prob", "logprob"):
        raise ValueError(f"kind must be 'prob' or 'logprob', not {kind!r}")
    return [values[t + 1] - values[t] for t in range(len(values) - 1)] + ([0.0] if values else [])
