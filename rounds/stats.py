"""Evaluation statistics: means with bootstrap confidence intervals, and run summaries.

Resampling uses :func:`scipy.stats.bootstrap` (BCa intervals) rather than a
hand-written loop; SciPy is imported on first use to keep ``import rounds`` light.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel

from rounds.records import Episode


class Interval(BaseModel):
    """A statistic with its confidence interval (``low``/``high`` are None with fewer than 2 values)."""

    value: float
    low: float | None
    high: float | None
    n: int
    confidence: float = 0.95


def mean_interval(
    values: Sequence[float] | np.ndarray,
    *,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> Interval:
    """The mean of ``values`` with a BCa bootstrap interval.

    Constant data has a zero-width interval at its value (BCa is undefined there).
    """
    data = np.asarray(values, dtype=float)
    n = int(data.size)
    if n == 0:
        return Interval(value=math.nan, low=None, high=None, n=0, confidence=confidence)
    mean = float(data.mean())
    if n < 2:
        return Interval(value=mean, low=None, high=None, n=n, confidence=confidence)
    if np.all(data == data[0]):
        return Interval(value=mean, low=mean, high=mean, n=n, confidence=confidence)
    from scipy import stats

    result = stats.bootstrap(
        (data,),
        np.mean,
        confidence_level=confidence,
        n_resamples=n_resamples,
        method="BCa",
        random_state=np.random.default_rng(seed),
    )
    low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
    if not (math.isfinite(low) and math.isfinite(high)):
        result = stats.bootstrap(
            (data,),
            np.mean,
            confidence_level=confidence,
            n_resamples=n_resamples,
            method="percentile",
            random_state=np.random.default_rng(seed),
        )
        low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
    return Interval(value=mean, low=low, high=high, n=n, confidence=confidence)


def episode_values(episodes: Iterable[Episode]) -> dict[str, list[float]]:
    """Per-episode values of every reported metric: the env's metrics plus the record's own."""
    columns: dict[str, list[float]] = {}
    for episode in episodes:
        row = {
            "outcome": episode.outcome,
            "total_reward": episode.total_reward,
            "num_turns": float(episode.num_turns),
            "truncated": float(episode.truncated),
            **episode.metrics,
        }
        for key, value in row.items():
            columns.setdefault(key, []).append(float(value))
    return columns


def summarize_episodes(
    episodes: Sequence[Episode], *, confidence: float = 0.95, seed: int = 0
) -> dict[str, Any]:
    """Every metric's mean with its bootstrap interval, and the counts behind them."""
    columns = episode_values(episodes)
    return {
        "counts": {
            "episodes": len(episodes),
            "tasks": len({e.task_id for e in episodes}),
        },
        "metrics": {
            name: mean_interval(values, confidence=confidence, seed=seed).model_dump()
            for name, values in sorted(columns.items())
            if len(values) == len(episodes)
        },
    }
