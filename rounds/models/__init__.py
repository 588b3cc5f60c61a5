"""Model helpers shared by envs (the LLM world model), agents and trainers.

Heavy libraries (torch, transformers, tokenizers) are imported inside the
functions that need them, so importing this package stays light.

- :func:`tiny`: a tiny Qwen2-architecture model and byte-level BPE tokenizer,
  built locally and deterministically (tests, demos, CI).
- :func:`resolve_model`: ``"tiny"`` to the tiny model's directory; any other
  string is a local path or a Hugging Face id, passed through.
"""

from rounds.models.tiny import TINY_DEFAULTS, resolve_model, tiny

__all__ = ["TINY_DEFAULTS", "resolve_model", "tiny"]
