"""The one causal-LM loader: the trainer's policy, the ``hf`` agent and the clinic's LLM world
model all load their weights and tokenizer here.

Loading in one place keeps the details the same for every caller: ``"tiny"`` resolves
to the embedded tiny model, nothing is fetched from the network unless the caller
disabled offline mode, hub progress bars are off, and ``dtype`` is one spelling
(``"auto"``, a torch dtype name such as ``"bfloat16"``, or a ``torch.dtype``).

The loaded model and tokenizer are typed ``Any``: transformers' classes are only partly
typed (``generate``, ``to`` and ``eval`` read as tensors, unbound or untyped), so a
precise type here would only move ignores into every caller.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rounds.models.tiny import resolve_model

if TYPE_CHECKING:
    import torch


def torch_dtype(dtype: str | torch.dtype) -> torch.dtype | str:
    """``"auto"`` unchanged (the checkpoint's own dtype), a name such as ``"bfloat16"`` as the
    ``torch.dtype``, a ``torch.dtype`` as is."""
    import torch

    if isinstance(dtype, torch.dtype) or dtype == "auto":
        return dtype
    value = getattr(torch, dtype, None)
    if not isinstance(value, torch.dtype):
        raise ValueError(f"unknown dtype {dtype!r}; use auto, float32, bfloat16 or float16")
    return value


def _quiet() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # untyped in transformers


def load_tokenizer(name: str) -> Any:
    """The tokenizer of ``name`` (a local path, a hub id, or ``"tiny"``)."""
    from transformers import AutoTokenizer

    _quiet()
    return AutoTokenizer.from_pretrained(resolve_model(name))


def load_causal_lm(
    name: str, *, dtype: str | torch.dtype = "auto", device: str | None = None
) -> Any:
    """The causal LM ``name`` (a local path, a hub id, ``"tiny"``, or a checkpoint's ``model/``
    directory) in ``dtype``, moved to ``device`` when given."""
    from transformers import AutoModelForCausalLM

    _quiet()
    model: Any = AutoModelForCausalLM.from_pretrained(resolve_model(name), dtype=torch_dtype(dtype))
    return model if device is None else model.to(device)


def load_model_and_tokenizer(
    name: str, *, dtype: str | torch.dtype = "auto", device: str | None = None
) -> tuple[Any, Any]:
    """:func:`load_causal_lm` and :func:`load_tokenizer` of the same ``name``."""
    return load_causal_lm(name, dtype=dtype, device=device), load_tokenizer(name)
