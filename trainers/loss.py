"""The policy loss: PPO's clipped objective with separate clip bounds, a k3 KL and an entropy bonus.

Per trained token ``i`` with ratio ``ρ_i = exp(log π_θ − log π_old)``:

    L_i = −min(ρ_i A_i, clip(ρ_i, 1 − ε_low, 1 + ε_high) A_i)
          + β (exp(log π_ref − log π_θ) − (log π_ref − log π_θ) − 1)     (k3 KL estimator)
          − c H_i

and the loss is the token-level mean over the whole batch (DAPO):
``Σ_i m_i L_i / Σ_i m_i``, the same normaliser for every micro-batch so that
gradient accumulation gives the full batch's gradient.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from rounds.models.attention import shape_stable_attention

#: Model types whose logits are exactly ``lm_head(last hidden state)``: no soft-capping or
#: scaling after the head, so the head can be applied to chosen positions alone. Other
#: models go through their own forward (every position's logits, then the chosen ones).
PLAIN_HEAD_MODEL_TYPES = frozenset(
    {"llama", "mistral", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "phi3", "olmo2"}
)


def decoder_and_head(model: Any) -> tuple[Any, Any] | None:
    """The decoder stack and LM head of a causal LM (through a peft wrapper) whose logits are
    the head applied to the last hidden state, or None for any other model."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    config = getattr(base, "config", None)
    if getattr(config, "model_type", None) not in PLAIN_HEAD_MODEL_TYPES:
        return None
    decoder, head = base.get_decoder(), base.get_output_embeddings()
    if decoder is None or head is None:
        return None
    return decoder, head


#: Rows' repeated prompt tokens must be at least 1/4 of the batch's tokens for
#: :func:`shared_prefix_hidden` to run them once (single-turn GRPO groups of 8: ~45%).
SHARED_PREFIX_MIN_SHARE_INVERSE = 4


def right_padded(attention_mask: torch.Tensor) -> bool:
    """Whether every row of ``attention_mask`` is ones then zeros (padding only at the end)."""
    return bool((attention_mask[:, 1:] <= attention_mask[:, :-1]).all())


def token_logprobs(
    model: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    targets: torch.Tensor,
    temperature: float,
    *,
    entropy: bool = False,
    entropy_grad: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``log π(x_i | x_{<i})`` at temperature ``T`` for the tokens ``targets`` marks, and
    optionally the entropy of each of those predictions.

    Only the marked positions get logits: for a plain-head model (:func:`decoder_and_head`)
    the decoder's hidden states before each marked token are gathered and the LM head is
    applied to them alone, so observation and prompt tokens cost no full-vocabulary row
    (in the forward or the backward pass). The values equal the full computation.

    The entropy carries a gradient only with ``entropy_grad`` (an entropy bonus in the
    loss); otherwise it is computed without one, so its full-vocabulary intermediates are
    not kept for the backward pass.

    Args:
        targets: a boolean ``(batch, length)`` mask; ``targets[:, 0]`` must be False (the
            first token has no prediction).

    Returns:
        Flat tensors of the marked tokens in row-major order, shape ``(targets.sum(),)``.
    """
    before = targets[:, 1:]  # position i − 1 predicts token i
    parts = decoder_and_head(model)
    # In a causal LM no real token sees a later position, so right padding needs no mask:
    # without one, attention takes its causal kernel (no (T, T) mask is built), and the real
    # tokens' values are the same (pad positions differ, and are never targets).
    unmasked = right_padded(attention_mask)
    mask = None if unmasked else attention_mask
    with shape_stable_attention():  # each step's lengths are new (rounds.models.attention)
        if parts is None:
            logits = model(input_ids=input_ids, attention_mask=mask).logits[:, :-1]
            chosen_logits = logits[before]
        else:
            decoder, head = parts
            shared = (
                shared_prefix_hidden(decoder, input_ids, attention_mask, targets)
                if unmasked
                else None
            )
            if shared is None:
                hidden = decoder(
                    input_ids=input_ids, attention_mask=mask, use_cache=False
                ).last_hidden_state
                shared = hidden[:, :-1][before]
            chosen_logits = head(shared)
    log_probs = torch.log_softmax(chosen_logits.float() / temperature, dim=-1)
    chosen = log_probs.gather(-1, input_ids[:, 1:][before][:, None]).squeeze(-1)
    if not entropy:
        return chosen, None
    if entropy_grad:
        return chosen, -(log_probs.exp() * log_probs).sum(-1)
    with torch.no_grad():
        return chosen, -(log_probs.exp() * log_probs).sum(-1)


def shared_prefix_hidden(
    decoder: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor, targets: torch.Tensor
) -> torch.Tensor | None:
    """The decoder's hidden states before each marked token (``hidden[:, :-1][targets[:, 1:]]``),
    with each prompt that several rows share run once; None when no row shares one.

    A GRPO group's episodes start from one prompt (the system prompt, the tools, the first
    observation), and every row of the update would run it again. Here each row's prefix (its
    tokens before the position that predicts its first marked token) is run once per distinct
    prefix (left-padded into one batch, with the cache kept), each row's copy of those keys
    and values is taken from the cache, and the rows' remaining tokens run on top of it.
    The values and their gradients are those of the whole rows (tested); the saving is the
    repeated prompts' share of the batch's tokens. Needs right-padded rows (the trainer's
    batches) and a model that returns a plain full-attention cache in training (not with
    gradient checkpointing, not a sliding window). With dropout in training (LoRA's
    ``lora_dropout``), the rows that share a prompt share its dropout mask too: the same
    expected gradient, with more correlated noise.
    """
    from transformers import DynamicCache

    from rounds.models.caches import cache_keyword, is_plain, returned_cache

    if getattr(decoder, "gradient_checkpointing", False):
        return None
    rows, width = input_ids.shape
    lengths = attention_mask.sum(1).tolist()
    firsts = targets.int().argmax(1).tolist()  # each row's first marked position
    prefixes: dict[tuple[int, ...], int] = {}
    group: list[int] = []
    cut: list[int] = []
    for row in range(rows):
        if not targets[row].any():
            return None
        keep = max(0, firsts[row] - 1)  # the first marked token needs the hidden state before it
        key = tuple(input_ids[row, :keep].tolist())
        group.append(prefixes.setdefault(key, len(prefixes)))
        cut.append(keep)
    # Worth a second pass only when the repeats are a good share of the work: the rest runs
    # with a mask, not the causal kernel, and a small share saves less than that costs.
    repeated = sum(cut) - sum(len(prefix) for prefix in prefixes)
    if repeated * SHARED_PREFIX_MIN_SHARE_INVERSE < sum(lengths):
        return None
    # Prefixes left-padded into one batch; their keys and values become every row's cache.
    distinct = list(prefixes)
    span = max(len(p) for p in distinct)
    device = input_ids.device
    prefix_ids = torch.zeros((len(distinct), span), dtype=input_ids.dtype, device=device)
    prefix_mask = torch.zeros((len(distinct), span), dtype=attention_mask.dtype, device=device)
    for i, prefix in enumerate(distinct):
        if prefix:
            prefix_ids[i, span - len(prefix) :] = torch.tensor(prefix, dtype=input_ids.dtype)
            prefix_mask[i, span - len(prefix) :] = 1
    keyword = cache_keyword(decoder)
    out = decoder(
        input_ids=prefix_ids,
        attention_mask=prefix_mask,
        position_ids=(prefix_mask.long().cumsum(1) - 1).clamp(min=0),
        use_cache=True,
    )
    cache = returned_cache(out, keyword)
    if not is_plain(cache):
        return None
    index = torch.tensor(group, device=device)
    copies = DynamicCache()
    for layer, held in enumerate(cache.layers):
        copies.update(held.keys.index_select(0, index), held.values.index_select(0, index), layer)
    # Each row's rest, right-padded, at the positions it has in its own row.
    rest = max(length - keep for length, keep in zip(lengths, cut, strict=True))
    rest_ids = torch.zeros((rows, rest), dtype=input_ids.dtype, device=device)
    rest_mask = torch.zeros((rows, rest), dtype=attention_mask.dtype, device=device)
    before = torch.zeros((rows, rest), dtype=torch.bool, device=device)
    for row, (length, keep) in enumerate(zip(lengths, cut, strict=True)):
        rest_ids[row, : length - keep] = input_ids[row, keep:length]
        rest_mask[row, : length - keep] = 1
        # Token i (i > keep) is predicted at position i - 1, the rest's column i - 1 - keep
        # (marked tokens lie within the row's length, so within the rest's width).
        shown = min(rest, width - 1 - keep)
        before[row, :shown] = targets[row, keep + 1 : keep + 1 + shown]
    positions = torch.tensor(cut, device=device)[:, None] + torch.arange(rest, device=device)
    hidden = decoder(
        input_ids=rest_ids,
        attention_mask=torch.cat([prefix_mask.index_select(0, index), rest_mask], dim=1),
        position_ids=positions,
        use_cache=True,
        **{keyword: copies},
    ).last_hidden_state
    chosen: torch.Tensor = hidden[before]
    return chosen


def k3_kl(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """Schulman's k3 estimator of KL(π_θ || π_ref): ``exp(r) − r − 1`` with ``r = log π_ref − log π_θ``."""
    delta = ref_logprobs - logprobs
    return torch.exp(delta) - delta - 1.0


@dataclass
class LossStats:
    """Token-weighted sums for logging (divide by the batch's token count)."""

    policy_loss: float
    kl: float
    entropy: float
    clipped: float
    ratio: float
    tokens: float


def ppo_clip_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    clip_low: float,
    clip_high: float,
    normalizer: float,
    ref_logprobs: torch.Tensor | None = None,
    kl_coef: float = 0.0,
    entropy: torch.Tensor | None = None,
    entropy_coef: float = 0.0,
) -> tuple[torch.Tensor, LossStats]:
    """The clipped objective over masked tokens, divided by ``normalizer`` (the batch's token count).

    A token counts as clipped when the clip changed its gradient: ``ρ < 1 − ε_low``
    with ``A < 0``, or ``ρ > 1 + ε_high`` with ``A > 0``.
    """
    mask = mask.float()
    ratio = torch.exp(logprobs - old_logprobs)
    unclipped = ratio * advantages
    clipped = torch.clamp(ratio, 1.0 - clip_low, 1.0 + clip_high) * advantages
    per_token = -torch.minimum(unclipped, clipped)
    kl = torch.zeros_like(per_token)
    if ref_logprobs is not None:
        kl = k3_kl(logprobs, ref_logprobs)
        per_token = per_token + kl_coef * kl
    if entropy is not None and entropy_coef:
        per_token = per_token - entropy_coef * entropy
    loss = (per_token * mask).sum() / normalizer
    with torch.no_grad():
        was_clipped = ((ratio < 1.0 - clip_low) & (advantages < 0)) | (
            (ratio > 1.0 + clip_high) & (advantages > 0)
        )
        stats = LossStats(
            policy_loss=float((-torch.minimum(unclipped, clipped) * mask).sum()),
            kl=float((kl * mask).sum()),
            entropy=float((entropy * mask).sum()) if entropy is not None else 0.0,
            clipped=float((was_clipped.float() * mask).sum()),
            ratio=float((ratio * mask).sum()),
            tokens=float(mask.sum()),
        )
    return loss, stats
