"""Model helpers shared by envs (the LLM world model), agents and trainers.

Heavy libraries (torch, transformers, tokenizers) are imported inside the
functions that need them, so importing this package stays light.

- :func:`tiny`: a tiny Qwen2-architecture model and byte-level BPE tokenizer,
  built locally and deterministically (tests, demos, CI).
- :func:`tiny_vl`: the same for images: a tiny Qwen2-VL with an image processor.
- :func:`resolve_model`: ``"tiny"`` (``"tiny-vl"``) to the tiny model's directory; any other
  string is a local path or a Hugging Face id, passed through.
- :func:`load_causal_lm`, :func:`load_tokenizer`: the one loader of causal LMs, used by
  the trainer's policy, the ``hf`` agent and the clinic's LLM world model;
  :func:`load_vision_language_model` for the ``hf`` agent's vision-language models.
"""

from rounds.models.causal_lm import (
    is_vision_language,
    load_causal_lm,
    load_model_and_tokenizer,
    load_tokenizer,
    load_vision_language_model,
    torch_dtype,
)
from rounds.models.tiny import TINY_DEFAULTS, resolve_model, tiny
from rounds.models.tiny_vl import TINY_VL_DEFAULTS, tiny_vl

__all__ = [
    "TINY_DEFAULTS",
    "TINY_VL_DEFAULTS",
    "is_vision_language",
    "load_causal_lm",
    "load_model_and_tokenizer",
    "load_tokenizer",
    "load_vision_language_model",
    "resolve_model",
    "tiny",
    "tiny_vl",
    "torch_dtype",
]
