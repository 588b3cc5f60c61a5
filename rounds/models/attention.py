"""Attention kernels for shapes that change at every call.

PyTorch's ``scaled_dot_product_attention`` prefers cuDNN's kernel on recent NVIDIA GPUs
(H100/H200). cuDNN builds an execution plan for each new shape, and a rollout meets a new
key length at every decoding step (each turn, each batch), as an update meets new sequence
lengths at every step. Measured on an H200 (``benchmarks/gpu.py``, a Qwen2.5-0.5B shape,
16 episodes): a 100-token reply took about 7 s when its lengths were new and 2 s when they
had been seen before. Flash attention and the memory-efficient kernel need no per-shape
plan, so generation and the trainer's forward passes run under :func:`shape_stable_attention`,
which leaves cuDNN out and lets PyTorch choose among the rest. It changes nothing on CPU.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def shape_stable_attention() -> Iterator[None]:
    """SDPA limited to flash, memory-efficient and math kernels for the block (not cuDNN)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    backends = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]
    with sdpa_kernel(backends):
        yield
