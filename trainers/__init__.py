"""Trainers: agentic multi-turn GRPO over `rounds` envs.

``from rounds.trainers import GRPOTrainer, GRPOConfig``. Importing this package
does not import torch; building a trainer does (``GRPOTrainer`` is imported on
first use, and type checkers see the real class).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rounds.trainers.config import GRPOConfig, LoRAConfig, WarmStart
from rounds.trainers.resume import ResumeError

if TYPE_CHECKING:
    from rounds.trainers.trainer import GRPOTrainer

__all__ = ["GRPOConfig", "GRPOTrainer", "LoRAConfig", "ResumeError", "WarmStart"]


def __getattr__(name: str) -> type[GRPOTrainer]:
    if name == "GRPOTrainer":
        from rounds.trainers.trainer import GRPOTrainer

        return GRPOTrainer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
