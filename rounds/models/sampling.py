"""One batched sampling call, shared by the ``hf`` agent and the local rollout server
(``python -m rounds.models.serve``), so both sample the same way.

Three things make the recorded log-probs those of the policy the trainer recomputes (the
tempered distribution; the distribution actually sampled whenever ``top_k`` and ``top_p``
are off, their defaults), which the trainer's importance ratios assume:

- sampling follows exactly the settings given: text models decode in
  :func:`rounds.models.decoding.decode`, which applies nothing else; through ``generate``
  (vision-language models) a neutral generation config replaces the checkpoint's own
  defaults for the call (Qwen's ``repetition_penalty``, ``top_k`` and ``top_p`` would
  otherwise be merged in);
- the log-probs are those of the tempered distribution (what the trainer recomputes at the
  same temperature);
- attention runs under :func:`~rounds.models.attention.shape_stable_attention` (new
  lengths at every step; cuDNN's per-shape plans made a GPU rollout 3× slower).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rounds.models.attention import shape_stable_attention
from rounds.models.decoding import SamplingSettings, decode

__all__ = ["Sampled", "SamplingSettings", "sample"]

if TYPE_CHECKING:
    import torch


@dataclass
class Sampled:
    """What one sampling call drew, per row of its batch."""

    tokens: torch.Tensor
    """``(batch, steps)`` sampled token ids (a row that stopped early is padded after its stop)."""
    logprobs: torch.Tensor
    """``(batch, steps)`` log-probs of those tokens at the sampling temperature."""
    cache: Any
    """The cache after sampling (each row's prompt and all its sampled tokens but the last),
    for callers that keep it; None when it cannot be reused."""


def sample(
    lm: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    settings: SamplingSettings,
    *,
    seed: int,
    max_time: float | None = None,
    cache: Any = None,
    **vision_inputs: Any,
) -> Sampled:
    """Sample after each row of ``input_ids`` (left-padded) as ``settings`` say, seeded by
    ``seed``. ``cache`` holds the keys and values of the rows' first columns (see
    :func:`rounds.models.decoding.decode`).

    Text models run :func:`rounds.models.decoding.decode`. With ``vision_inputs`` (pixel
    values, image grids) the call goes through ``generate``, which prepares each
    vision-language model's own inputs (multimodal rotary positions); such episodes are
    for evaluation and always re-encode their conversation.

    Runs under ``torch.inference_mode()``: the returned tensors are inference tensors, to be
    read (``tolist``, copies), not used in a loss.
    """
    import torch

    lm.eval()
    with torch.inference_mode(), shape_stable_attention():
        if not vision_inputs:
            generator = torch.Generator(device=input_ids.device).manual_seed(seed)
            drawn = decode(
                lm,
                input_ids,
                attention_mask,
                settings,
                generator=generator,
                cache=cache,
                max_time=max_time,
            )
            return Sampled(tokens=drawn.tokens, logprobs=drawn.logprobs, cache=drawn.cache)
        return _generate(
            lm, input_ids, attention_mask, settings, seed=seed, max_time=max_time, **vision_inputs
        )


def _generate(
    lm: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    settings: SamplingSettings,
    *,
    seed: int,
    max_time: float | None,
    **vision_inputs: Any,
) -> Sampled:
    """``generate`` with a neutral generation config, the log-probs taken from its logits."""
    import torch
    from transformers import GenerationConfig

    temperature = settings.temperature
    greedy = temperature <= 0
    defaults = lm.generation_config
    neutral = GenerationConfig(  # type: ignore[no-untyped-call]  # untyped in transformers
        bos_token_id=defaults.bos_token_id,
        eos_token_id=defaults.eos_token_id,
        pad_token_id=defaults.pad_token_id,
    )
    torch.manual_seed(seed)
    lm.generation_config = neutral
    try:
        out = lm.generate(
            input_ids=input_ids,
            attention_mask=attention_mask,
            max_new_tokens=settings.max_new_tokens,
            do_sample=not greedy,
            temperature=None if greedy else temperature,
            top_p=None if greedy else settings.top_p,
            top_k=None if greedy else max(settings.top_k, 0),
            eos_token_id=list(settings.stop_ids),
            pad_token_id=settings.pad_id,
            return_dict_in_generate=True,
            output_logits=True,
            max_time=max_time,
            **vision_inputs,
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
    return Sampled(tokens=new, logprobs=logprobs, cache=None)
