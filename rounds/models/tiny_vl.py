"""A tiny vision-language model built offline: Qwen2-VL architecture with random weights.

``tiny_vl()`` is to image observations what :func:`rounds.models.tiny` is to text:
the same corpus-trained byte-level BPE tokenizer (plus Qwen2-VL's vision tokens),
a ChatML template whose user content may hold ``{"type": "image"}`` parts, a
Qwen2-VL image processor and a model of a few hundred thousand parameters,
deterministic for a seed and cached like ``tiny()``. It samples noise; it exists
so tests and demos can check that screenshots reach a model as pixels.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from rounds.models.tiny import (
    CHAT_TEMPLATE,
    SPECIAL_TOKENS,
    TINY_DEFAULTS,
    _config_key,
    build_once,
    build_tokenizer,
    cache_dir,
    neutral_generation_config,
)

#: Qwen2-VL's vision tokens: an image is ``<|vision_start|>`` + its pads + ``<|vision_end|>``.
VISION_TOKENS = ["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]

TINY_VL_DEFAULTS: dict[str, Any] = {
    **TINY_DEFAULTS,
    "vision_depth": 1,
    "vision_embed_dim": 32,
    "vision_heads": 2,
    # An image is resized to at most this many pixels: 28 x 28 x 16 is 16 image tokens.
    "max_pixels": 28 * 28 * 16,
    "min_pixels": 28 * 28 * 4,
}

# The text template with one change: a message's content may be a list of parts, where
# an image part (``{"type": "image"}`` or OpenAI's ``"image_url"``) becomes Qwen2-VL's vision placeholder (the processor expands
# ``<|image_pad|>`` to one token per merged image patch).
_RENDER = (
    "{% macro render(content) %}"
    "{% if content is string %}{{ content }}{% else %}{% for part in content %}"
    "{% if part['type'] in ('image', 'image_url') %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% else %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}"
    "{% endmacro %}"
)
VL_CHAT_TEMPLATE = _RENDER + CHAT_TEMPLATE.replace(
    "{{ message['content'] }}", "{{ render(message['content']) }}"
)


def _build(directory: Path, config: dict[str, Any]) -> None:
    import torch
    from transformers import (
        Qwen2VLConfig,
        Qwen2VLForConditionalGeneration,
        Qwen2VLImageProcessorPil,
    )

    tokenizer = build_tokenizer(config, SPECIAL_TOKENS + VISION_TOKENS, VL_CHAT_TEMPLATE)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in VISION_TOKENS}
    head_dim = config["hidden_size"] // config["num_attention_heads"]
    quarter = head_dim // 4  # M-RoPE splits half the head dim into time, height, width
    torch.manual_seed(config["seed"])
    model_config = Qwen2VLConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": config["hidden_size"],
            "intermediate_size": config["intermediate_size"],
            "num_hidden_layers": config["num_hidden_layers"],
            "num_attention_heads": config["num_attention_heads"],
            "num_key_value_heads": config["num_key_value_heads"],
            "max_position_embeddings": config["max_position_embeddings"],
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": 1_000_000.0,
                "mrope_section": [head_dim // 2 - 2 * quarter, quarter, quarter],
            },
            "eos_token_id": tokenizer.convert_tokens_to_ids("<|im_end|>"),
            "pad_token_id": tokenizer.pad_token_id,
            "bos_token_id": None,
        },
        vision_config={
            "depth": config["vision_depth"],
            "embed_dim": config["vision_embed_dim"],
            "hidden_size": config["hidden_size"],
            "num_heads": config["vision_heads"],
            "mlp_ratio": 2,
        },
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=True,
    )
    model = Qwen2VLForConditionalGeneration(model_config)
    model.generation_config = neutral_generation_config(
        tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer
    )
    # The PIL image processor: the default one needs torchvision, which rounds does not install.
    image_processor = Qwen2VLImageProcessorPil(
        min_pixels=config["min_pixels"], max_pixels=config["max_pixels"]
    )
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    image_processor.save_pretrained(directory)


def tiny_vl(path: str | os.PathLike[str] | None = None, **overrides: Any) -> Path:
    """Build (or reuse) the tiny vision-language model and return its directory.

    Args:
        path: where to save it; default: a cache directory named by a hash of the settings.
        overrides: settings to change from :data:`TINY_VL_DEFAULTS`.

    Returns:
        A directory that ``AutoModelForImageTextToText``, ``AutoProcessor`` and
        ``AutoTokenizer`` load (``rounds.models.load_model_and_tokenizer`` does).
    """
    unknown = set(overrides) - set(TINY_VL_DEFAULTS)
    if unknown:
        raise ValueError(
            f"unknown tiny-vl settings {sorted(unknown)}; settings: {sorted(TINY_VL_DEFAULTS)}"
        )
    config = {**TINY_VL_DEFAULTS, **overrides}
    key = _config_key({**config, "vl_template": VL_CHAT_TEMPLATE})
    target = Path(path) if path is not None else cache_dir() / f"tiny-vl-{key}"
    return build_once(target, _build, config)
