"""One batched sampling call through ``transformers``' ``generate``, shared by the ``hf`` agent
and the local rollout server (``python -m rounds.models.serve``), so both sample the same way.

Three things make the recorded log-probs those of the distribution actually sampled, which
the trainer's importance ratios assume:

- a neutral generation config replaces the checkpoint's own defaults for the call (Qwen's
  ``repetition_penalty``, ``top_k`` and ``top_p`` would otherwise be merged in);
- the log-probs are computed from the returned logits after temperature scaling (what the
  trainer recomputes at the same temperature);
- attention runs under :func:`~rounds.models.attention.shape_stable_attention` (new
  lengths at every step; cuDNN's per-shape plans made a GPU rollout 3× slower).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rounds.models.attention import shape_stable_attention

if TYPE_CHECKING:
    import torch


@dataclass
class Sampled:
    """What one ``generate`` call returned, per row of its batch."""

    tokens: torch.Tensor
    """``(batch, steps)`` sampled token ids (a row that stopped early is padded after its stop)."""
    logprobs: torch.Tensor
    """``(batch, steps)`` log-probs of those tokens at the sampling temperature."""
    output: Any
    """``generate``'s own output (its cache, for callers that keep it)."""


def sample(
    lm: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    *,
    max_new_tokens: int,
    temperature: float,
    top_p: float,
    top_k: int,
    stop_ids: list[int],
    pad_id: int,
    seed: int,
    max_time: float | None = None,
    **model_inputs: Any,
) -> Sampled:
    """Sample up to ``max_new_tokens`` after each row of ``input_ids`` (left-padded), greedy
    when ``temperature`` is 0, seeded by ``seed``; ``model_inputs`` go to ``generate`` as
    they are (pixel values, a cache)."""
    import torch
    from transformers import GenerationConfig

    greedy = temperature <= 0
    defaults = lm.generation_config
    neutral = GenerationConfig(  # type: ignore[no-untyped-call]  # untyped in transformers
        bos_token_id=defaults.bos_token_id,
        eos_token_id=defaults.eos_token_id,
        pad_token_id=defaults.pad_token_id,
    )
    torch.manual_seed(seed)
    lm.eval()
    lm.generation_config = neutral
    try:
        with torch.no_grad(), shape_stable_attention():
            out = lm.generate(
                input_ids=input_ids,
                attention_mask=attention_mask,
                max_new_tokens=max_new_tokens,
                do_sample=not greedy,
                temperature=None if greedy else temperature,
                top_p=None if greedy else top_p,
                top_k=None if greedy else max(top_k, 0),
                eos_token_id=stop_ids,
                pad_token_id=pad_id,
                return_dict_in_generate=True,
                output_logits=True,
                max_time=max_time,
                **model_inputs,
            )
    finally:
        lm.generation_config = defaults
    new = out.sequences[:, input_ids.shape[1] :]
    scale = 1.0 if greedy else temperature
    logprobs = (
        torch.stack(
            [
                torch.log_softmax(step.float() / scale, dim=-1).gather(1, new[:, t : t + 1])[:, 0]
                for t, step in enumerate(out.logits)
            ],
            dim=1,
        )
        if out.logits
        else torch.zeros_like(new, dtype=torch.float)
    )
    return Sampled(tokens=new, logprobs=logprobs, output=out)
