"""Trainers: agentic multi-turn GRPO over `rounds` envs.

``from rounds.trainers import GRPOTrainer, GRPOConfig``. Importing this package
does not import torch; building a trainer does.
"""

from rounds.trainers.config import GRPOConfig, LoRAConfig, WarmStart

__all__ = ["GRPOConfig", "GRPOTrainer", "LoRAConfig", "WarmStart"]


def __getattr__(name: str) -> object:
    if name == "GRPOTrainer":
        from rounds.trainers.trainer import GRPOTrainer

        return GRPOTrainer
    raise AttributeError(name)
