"""The policy the trainer optimises: where it runs, in which precision, and where it comes from.

Trained weights are float32 whatever their stored dtype (a model passed in is
converted in place): AdamW steps on bf16 weights mostly round away, so bf16 is used
only through autocast. Frozen weights (the KL reference, a LoRA base) are bf16 when
training in bf16; peft keeps adapters in float32. Every load goes through
:func:`rounds.models.load_causal_lm`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rounds.models import load_causal_lm, load_tokenizer
from rounds.trainers.config import GRPOConfig


def resolve_device(choice: str) -> str:
    """``auto`` to ``cuda`` when a GPU is present, else ``cpu``; anything else unchanged."""
    import torch

    if choice == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return choice


def autocast_dtype(bf16: bool | str, device: str) -> Any:
    """``torch.bfloat16`` when the config asks for bf16 and the GPU supports it, else None.

    Raises:
        ValueError: ``bf16=True`` on a device without CUDA.
    """
    import torch

    cuda = device.startswith("cuda")
    wanted = bf16 is True or (bf16 == "auto" and cuda)
    if wanted and cuda and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    if bf16 is True and not cuda:
        raise ValueError("bf16=True needs a CUDA GPU; use bf16='auto' to train in float32 on CPU")
    return None


@dataclass
class Policy:
    """The trained model, its tokenizer and the frozen KL reference (None without KL, or under
    LoRA, where the reference is the base model with the adapter disabled)."""

    model: Any
    tokenizer: Any
    reference: Any


def load_policy(
    config: GRPOConfig,
    model: Any,
    tokenizer: Any,
    checkpoint: Path | None,
    *,
    device: str,
    autocast: Any,
) -> Policy:
    """The policy (from ``checkpoint`` when resuming), its tokenizer, and the frozen KL
    reference: the initial policy, also on resume.

    Args:
        model: None (load ``config.model``) or a loaded ``PreTrainedModel`` (with ``tokenizer``).
    """
    import torch

    frozen_dtype = autocast or torch.float32  # weights no optimizer steps
    loaded = model is not None and not isinstance(model, str)
    if loaded:
        if tokenizer is None:
            raise ValueError("pass tokenizer= together with a loaded model")
        if config.lora is None:
            model.float()  # in place: the master weights must be float32
    else:
        tokenizer = load_tokenizer(config.model)
    reference = None
    if config.kl_coef > 0 and config.lora is None:
        reference = (
            copy.deepcopy(model).to(dtype=frozen_dtype)
            if loaded
            else load_causal_lm(config.model, dtype=frozen_dtype)
        )
        reference = reference.eval().to(device)
        for parameter in reference.parameters():
            parameter.requires_grad_(False)
    if config.lora is not None:
        from peft import LoraConfig, PeftModel, get_peft_model

        base = model if loaded else load_causal_lm(config.model, dtype=frozen_dtype)
        if checkpoint is not None:
            policy = PeftModel.from_pretrained(base, checkpoint / "model", is_trainable=True)
        else:
            lora = config.lora
            policy = get_peft_model(
                base,
                LoraConfig(
                    r=lora.r,
                    lora_alpha=lora.alpha,
                    lora_dropout=lora.dropout,
                    target_modules=lora.target_modules,
                ),
            )
    elif checkpoint is not None:
        saved = load_causal_lm(str(checkpoint / "model"), dtype=torch.float32)
        if loaded:
            model.load_state_dict(saved.state_dict())
        policy = model if loaded else saved
    else:
        policy = model if loaded else load_causal_lm(config.model, dtype=torch.float32)
    if config.gradient_checkpointing:
        policy.gradient_checkpointing_enable()
    return Policy(policy.to(device), tokenizer, reference)
