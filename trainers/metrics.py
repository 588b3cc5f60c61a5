"""A training step's metrics, and the trackers they are reported to.

:func:`step_metrics` turns a step's scored groups and the update's statistics into
the row ``metrics.jsonl`` gets. :class:`MetricTrackers` sends the same rows to the
trackers named in ``GRPOConfig.report_to`` (``"tensorboard"``, ``"wandb"``), as TRL's
``report_to`` does; the run directory's files are written whatever it says.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from rounds.stats import pass_at_k

if TYPE_CHECKING:
    from rounds.trainers.scoring import Scored


def step_metrics(
    step: int,
    groups: Sequence[Sequence[Scored]],
    *,
    group_size: int,
    advantage_stats: Mapping[str, float],
    update_stats: Mapping[str, float],
    timing: Mapping[str, float],
) -> dict[str, Any]:
    """The step's row: rewards (total and per component), success, pass@1 and pass@G, turns,
    truncation, sampled tokens and throughput, then the advantage, update and timing figures."""
    episodes = [item.rollout.episode for group in groups for item in group]
    returns = np.array([item.total for group in groups for item in group], dtype=float)
    components: dict[str, list[float]] = {}
    for episode in episodes:
        sums: dict[str, float] = {}
        for turn in episode.turns:
            for key, value in turn.reward_components.items():
                sums[key] = sums.get(key, 0.0) + value
        for key, value in sums.items():
            components.setdefault(key, []).append(value)
    sampled = sum(
        sum(action.sampled_mask or [])
        for group in groups
        for item in group
        for action in item.rollout.actions
    )
    successes = [[float(item.rollout.episode.success) for item in group] for group in groups]
    generation_s = timing.get("time_generation", 0.0)
    metrics: dict[str, Any] = {
        "step": step,
        "episodes": len(episodes),
        "reward_mean": float(returns.mean()),
        "reward_std": float(returns.std()),
        "outcome_mean": float(np.mean([e.outcome for e in episodes])),
        "success_rate": float(np.mean([s for group in successes for s in group])),
        "pass@1": float(np.mean([pass_at_k(len(s), int(sum(s)), 1) for s in successes])),
        f"pass@{group_size}": float(
            np.mean([pass_at_k(len(s), int(sum(s)), group_size) for s in successes])
        ),
        "turns_mean": float(np.mean([e.num_turns for e in episodes])),
        "truncated_rate": float(np.mean([e.truncated for e in episodes])),
        "sampled_tokens": float(sampled),
        "tokens_per_s": float(sampled / generation_s) if generation_s else 0.0,
        **{f"reward/{key}": float(np.mean(values)) for key, values in sorted(components.items())},
        **advantage_stats,
        **update_stats,
        **timing,
    }
    info_gains = [gain for group in groups for item in group for gain in item.info_gains]
    if info_gains:
        metrics["info_gain_mean"] = float(np.mean(info_gains))
    return metrics


def scalars(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The numeric entries of a metrics row (trackers take numbers only)."""
    return {
        key: float(value)
        for key, value in metrics.items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    }


#: The module each tracker needs, and how to install it.
_TRACKER_NEEDS = {
    "tensorboard": ("torch.utils.tensorboard", "pip install tensorboard"),
    "wandb": ("wandb", "pip install wandb"),
}


def require_trackers(report_to: Sequence[str]) -> None:
    """Fail now, before a run directory is touched, if a tracker of ``report_to`` cannot load.

    Raises:
        ImportError: its package is missing (the message says how to install it).
        ValueError: an unknown tracker name.
    """
    for name in report_to:
        if name not in _TRACKER_NEEDS:
            raise ValueError(f"report_to: unknown tracker {name!r}; use tensorboard or wandb")
        module, install = _TRACKER_NEEDS[name]
        try:
            importlib.import_module(module)
        except ImportError as err:
            raise ImportError(f"report_to: {name} needs its package: {install}") from err


class Tracker(Protocol):
    """An experiment tracker: takes each step's numbers, and is closed at the end."""

    def log(self, values: Mapping[str, float], step: int) -> None: ...

    def close(self) -> None: ...


class TensorBoardTracker:
    """Scalars in ``RUN/tensorboard`` (``torch.utils.tensorboard``)."""

    def __init__(self, run_path: Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as err:
            raise ImportError(
                "report_to: tensorboard needs the tensorboard package: pip install tensorboard"
            ) from err
        self.writer = SummaryWriter(log_dir=str(run_path / "tensorboard"))

    def log(self, values: Mapping[str, float], step: int) -> None:
        for key, value in values.items():
            self.writer.add_scalar(key, value, step)

    def close(self) -> None:
        self.writer.close()


class WandbTracker:
    """A Weights & Biases run in ``RUN/wandb`` (offline unless ``WANDB_MODE`` says otherwise)."""

    def __init__(self, run_path: Path, config: Mapping[str, Any]) -> None:
        try:
            wandb = importlib.import_module("wandb")
        except ImportError as err:
            raise ImportError(
                "report_to: wandb needs the wandb package: pip install wandb"
            ) from err
        self.run = wandb.init(project="rounds", dir=str(run_path), config=dict(config))

    def log(self, values: Mapping[str, float], step: int) -> None:
        self.run.log(dict(values), step=step)

    def close(self) -> None:
        self.run.finish()


class MetricTrackers:
    """The trackers of ``report_to``, built when the trainer starts and fed every row."""

    def __init__(self, report_to: Sequence[str], run_path: Path, config: Mapping[str, Any]) -> None:
        require_trackers(report_to)
        self.trackers: list[Tracker] = []
        for name in report_to:
            if name == "tensorboard":
                self.trackers.append(TensorBoardTracker(run_path))
            else:
                self.trackers.append(WandbTracker(run_path, config))

    def log(self, metrics: Mapping[str, Any], step: int) -> None:
        values = scalars(metrics)
        for tracker in self.trackers:
            tracker.log(values, step)

    def close(self) -> None:
        for tracker in self.trackers:
            tracker.close()
        self.trackers = []
