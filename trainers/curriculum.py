"""Task sampling by difficulty: skip or down-weight tasks that every rollout solves or none does.

A GRPO group whose rollouts all succeed or all fail has zero advantage: it costs a
rollout and teaches nothing. :class:`PassRateCurriculum` keeps each task's recent pass
rate (the last ``window`` rollouts' success) and gives a task whose rate is 0 or 1 — once
it has ``min_samples`` rollouts — the sampling weight ``saturated_weight`` (0 skips it);
unseen tasks and tasks in between keep weight 1. The counts go into the step's metrics
(``curriculum/...``). State lives in memory: a resumed run rebuilds it from the run's
``episodes.jsonl`` (:meth:`PassRateCurriculum.replay`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from rounds.records import Episode


class Curriculum(BaseModel):
    """Config block ``curriculum``."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["pass_rate"] = Field(
        default="pass_rate", description="pass_rate: weight tasks by their recent pass rate."
    )
    window: int = Field(default=8, ge=1, description="Recent rollouts per task that count.")
    min_samples: int = Field(
        default=4, ge=1, description="Rollouts of a task before its pass rate counts."
    )
    saturated_weight: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="Sampling weight of a task every rollout solves or none does (0: skip it).",
    )


class PassRateCurriculum:
    """Each task's recent successes, and the sampling weights they imply."""

    def __init__(self, settings: Curriculum) -> None:
        self.settings = settings
        self.history: dict[str, deque[float]] = {}

    def update(self, task_id: str, successes: Iterable[float]) -> None:
        """Record rollouts of ``task_id`` (success 1/0, or a fraction)."""
        window = self.history.setdefault(task_id, deque(maxlen=self.settings.window))
        window.extend(float(s) for s in successes)

    def replay(self, episodes: Iterable[Episode]) -> None:
        """Rebuild the history from recorded training episodes (a resumed run)."""
        for episode in episodes:
            if episode.task_id is not None:
                self.update(episode.task_id, [float(episode.success)])

    def saturated(self, task_id: str) -> bool:
        """Whether the task's recent rollouts all succeeded or all failed."""
        window = self.history.get(task_id)
        if window is None or len(window) < self.settings.min_samples:
            return False
        rate = sum(window) / len(window)
        return rate <= 0.0 or rate >= 1.0

    def weights(self, task_ids: Sequence[str]) -> np.ndarray:
        """Sampling probabilities over ``task_ids``; uniform if every task is saturated and
        ``saturated_weight`` is 0 (there is nothing better to train on)."""
        raw = np.array(
            [self.settings.saturated_weight if self.saturated(t) else 1.0 for t in task_ids]
        )
        if raw.sum() <= 0:
            raw = np.ones(len(task_ids))
        weights: np.ndarray = raw / raw.sum()
        return weights

    def metrics(self, task_ids: Sequence[str]) -> dict[str, float]:
        """Counts for the step's metrics row."""
        solved = failed = 0
        for task in task_ids:
            if self.saturated(task):
                window = self.history[task]
                if sum(window) >= len(window):
                    solved += 1
                else:
                    failed += 1
        return {
            "curriculum/tasks_seen": float(len(self.history)),
            "curriculum/all_solved": float(solved),
            "curriculum/none_solved": float(failed),
            "curriculum/sampled_fraction": float(
                np.count_nonzero(self.weights(task_ids)) / max(len(task_ids), 1)
            ),
        }
