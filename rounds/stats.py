"""Evaluation statistics: means with bootstrap confidence intervals, and run summaries.

Resampling uses :func:`scipy.stats.bootstrap` (BCa intervals) rather than a
hand-written loop; SciPy is imported on first use to keep ``import rounds`` light.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
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


def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased pass@k estimator ``1 − C(n − c, k) / C(n, k)`` (Chen et al., 2021).

    ``n`` samples of a task, ``c`` of them correct. Computed in the stable product
    form ``1 − Π_{i = n−c+1}^{n} (1 − k / i)``, without huge binomials.
    """
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"need 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    product = 1.0
    for i in range(n - c + 1, n + 1):
        product *= 1.0 - k / i
    return 1.0 - product


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


#: A metric computed from the means of other metrics, e.g. the harmonic mean of
#: case-averaged precision and recall: ``(columns, function of their means)``.
DerivedMetric = tuple[tuple[str, ...], Callable[..., float]]


def derived_interval(
    columns: Sequence[Sequence[float]],
    function: Callable[..., float],
    *,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> Interval:
    """``function(mean(c_1), ..., mean(c_k))`` with a paired percentile bootstrap interval.

    Rows are resampled together (the columns come from the same episodes).
    """
    data = [np.asarray(c, dtype=float) for c in columns]
    n = int(data[0].size) if data else 0
    if n == 0:
        return Interval(value=math.nan, low=None, high=None, n=0, confidence=confidence)
    value = float(function(*(d.mean() for d in data)))
    if n < 2:
        return Interval(value=value, low=None, high=None, n=n, confidence=confidence)
    if all(np.all(d == d[0]) for d in data):
        return Interval(value=value, low=value, high=value, n=n, confidence=confidence)
    from scipy import stats

    def statistic(*samples: np.ndarray, axis: int = -1) -> Any:
        return function(*(np.mean(s, axis=axis) for s in samples))

    result = stats.bootstrap(
        tuple(data),
        statistic,
        paired=True,
        vectorized=True,
        confidence_level=confidence,
        n_resamples=n_resamples,
        method="percentile",
        random_state=np.random.default_rng(seed),
    )
    return Interval(
        value=value,
        low=float(result.confidence_interval.low),
        high=float(result.confidence_interval.high),
        n=n,
        confidence=confidence,
    )


def harmonic_mean(a: Any, b: Any) -> Any:
    """``2ab / (a + b)``, 0 where ``a + b`` is 0 (works on arrays)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        result = np.where(a + b > 0, 2 * a * b / (a + b), 0.0)
    return result if result.ndim else float(result)


def summarize_episodes(
    episodes: Sequence[Episode],
    *,
    derived: Mapping[str, DerivedMetric] | None = None,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """Every metric's mean with its bootstrap interval, and the counts behind them.

    A metric that only some episodes define (e.g. a hit ratio when an exam was
    ordered) is averaged over those; ``n`` says how many.
    """
    columns = episode_values(episodes)
    metrics = {
        name: mean_interval(values, confidence=confidence, seed=seed).model_dump()
        for name, values in sorted(columns.items())
    }
    rows = [{"outcome": e.outcome, **e.metrics} for e in episodes]
    for name, (needed, function) in (derived or {}).items():
        usable = [r for r in rows if all(c in r for c in needed)]
        if usable:
            metrics[name] = derived_interval(
                [[r[c] for r in usable] for c in needed], function, confidence=confidence, seed=seed
            ).model_dump()
    return {
        "counts": {
            "episodes": len(episodes),
            "tasks": len({e.task_id for e in episodes}),
        },
        "metrics": metrics,
    }
