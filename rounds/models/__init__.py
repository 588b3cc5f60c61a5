"""Model helpers shared by envs (the LLM world model), agents and trainers.

Heavy libraries (torch, transformers, tokenizers) are imported inside the
functions that need them, so importing this package stays light.

- :func:`tiny`: a tiny Qwen2-architecture model and byte-level BPE tokenizer,
  built locally and deterministically (tests, demos, CI).
- :func:`resolve_model`: ``"tiny"`` to the tiny model's directory; any other
  string is a local path or a Hugging Face id, passed through.
- :func:`load_causal_lm`, :func:`load_tokenizer`: the one loader of causal LMs, used by
  the trainer's policy, the ``hf`` agent and the clinic's LLM world model.
"""

from rounds.models.causal_lm import (
    load_causal_lm,
    load_model_and_tokenizer,
    load_tokenizer,
    torch_dtype,
)
from rounds.models.tiny import TINY_DEFAULTS, resolve_model, tiny

__all__ = [
    "TINY_DEFAULTS",
    "load_causal_lm",
    "load_model_and_tokenizer",
    "load_tokenizer",
    "resolve_model",
    "tiny",
    "torch_dtype",
]
