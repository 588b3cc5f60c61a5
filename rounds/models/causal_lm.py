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


def is_vision_language(name: str) -> bool:
    """Whether ``name``'s config has a vision tower (a vision-language model such as Qwen2-VL)."""
    from transformers import AutoConfig

    _quiet()
    config = AutoConfig.from_pretrained(resolve_model(name))
    return getattr(config, "vision_config", None) is not None


def load_causal_lm(
    name: str, *, dtype: str | torch.dtype = "auto", device: str | None = None
) -> Any:
    """The causal LM ``name`` (a local path, a hub id, ``"tiny"``, or a checkpoint's ``model/``
    directory) in ``dtype``, moved to ``device`` when given.

    Raises:
        ValueError: ``name`` is a vision-language model. Its episodes hold image tokens whose
            log-probs depend on pixel values, which the trainer's recomputation does not
            pass; so it is refused here (the trainer's policy loader) rather than trained
            on wrong log-probs. The ``hf`` agent loads it with
            :func:`load_vision_language_model` for evaluation.
    """
    from transformers import AutoModelForCausalLM

    if is_vision_language(name):
        raise ValueError(
            f"{name} is a vision-language model; rounds trains text-only models (the trainer "
            "does not recompute log-probs with pixel values). Evaluate it with the hf agent "
            "(rounds eval --agent hf --model ...), or train a text model."
        )
    model: Any = AutoModelForCausalLM.from_pretrained(resolve_model(name), dtype=torch_dtype(dtype))
    return model if device is None else model.to(device)


def load_vision_language_model(
    name: str, *, dtype: str | torch.dtype = "auto", device: str | None = None
) -> tuple[Any, Any, Any]:
    """A vision-language model (``AutoModelForImageTextToText``), its tokenizer and its image
    processor (``AutoImageProcessor``), for the ``hf`` agent."""
    from transformers import AutoImageProcessor, AutoModelForImageTextToText, AutoTokenizer

    _quiet()
    path = resolve_model(name)
    model: Any = AutoModelForImageTextToText.from_pretrained(path, dtype=torch_dtype(dtype))
    tokenizer = AutoTokenizer.from_pretrained(path)
    image_processor = AutoImageProcessor.from_pretrained(path)  # type: ignore[no-untyped-call]
    return (model if device is None else model.to(device)), tokenizer, image_processor


def load_model_and_tokenizer(
    name: str, *, dtype: str | torch.dtype = "auto", device: str | None = None
) -> tuple[Any, Any]:
    """:func:`load_causal_lm` and :func:`load_tokenizer` of the same ``name``."""
    return load_causal_lm(name, dtype=dtype, device=device), load_tokenizer(name)
