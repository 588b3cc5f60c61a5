"""Evaluation statistics: intervals, pass@k, answer entropy, robust aggregates, run summaries.

Resampling uses :func:`scipy.stats.bootstrap` rather than a hand-written loop
(rliable's own bootstrap does not import with current pandas through its ``arch``
dependency). Passing each task's scores to SciPy as a separate sample makes its
bootstrap stratified: scores are resampled within each task, as rliable does.
SciPy is imported on first use to keep ``import rounds`` light.
"""

from __future__ import annotations

import functools
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

    for method in ("BCa", "percentile"):  # BCa can be undefined on very skewed data
        result = stats.bootstrap(
            (data,),
            np.mean,
            confidence_level=confidence,
            n_resamples=n_resamples,
            method=method,
            random_state=np.random.default_rng(seed),
        )
        low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
        if math.isfinite(low) and math.isfinite(high):
            break
    return Interval(value=mean, low=low, high=high, n=n, confidence=confidence)


def _percentile_interval(
    samples: tuple[Any, ...],
    statistic: Callable[..., Any],
    *,
    value: float,
    n: int,
    confidence: float,
    n_resamples: int,
    seed: int,
    **options: Any,
) -> Interval:
    """``value`` with the percentile bootstrap interval of ``statistic`` over ``samples``
    (``options`` go to :func:`scipy.stats.bootstrap`, e.g. ``paired``, ``vectorized``)."""
    from scipy import stats

    result = stats.bootstrap(
        samples,
        statistic,
        confidence_level=confidence,
        n_resamples=n_resamples,
        method="percentile",
        random_state=np.random.default_rng(seed),
        **options,
    )
    return Interval(
        value=value,
        low=float(result.confidence_interval.low),
        high=float(result.confidence_interval.high),
        n=n,
        confidence=confidence,
    )


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


def pass_at_k_tasks(
    counts: Sequence[tuple[int, int]], k: int, *, confidence: float = 0.95, seed: int = 0
) -> Interval:
    """Mean pass@k over tasks, each ``(n samples, c correct)``, with a bootstrap interval over tasks."""
    values = [pass_at_k(n, c, k) for n, c in counts if n >= k]
    return mean_interval(values, confidence=confidence, seed=seed)


def powers_of_two(limit: int) -> list[int]:
    """``1, 2, 4, ...`` up to ``limit``, and ``limit`` itself."""
    ks, k = [], 1
    while k <= limit:
        ks.append(k)
        k *= 2
    return ks + ([limit] if limit >= 1 and ks[-1] != limit else [])


def answer_entropy(answers: Sequence[str]) -> float:
    """Entropy (nats) of the empirical distribution of distinct answers: ``−Σ_a p_a log p_a``."""
    if not answers:
        return 0.0
    _, counts = np.unique(np.asarray(list(answers), dtype=object).astype(str), return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log(p)).sum())


def iqm(scores: Any) -> float:
    """Interquartile mean: the mean of the middle 50% of the scores (25% trimmed each side)."""
    from scipy import stats

    return float(stats.trim_mean(np.asarray(scores, dtype=float).ravel(), 0.25))


def optimality_gap(scores: Any, threshold: float = 1.0) -> float:
    """How far scores fall short of ``threshold`` on average: ``mean(max(threshold − x, 0))``."""
    return float(np.maximum(threshold - np.asarray(scores, dtype=float).ravel(), 0.0).mean())


AGGREGATES: dict[str, Callable[[Any], float]] = {
    "mean": lambda x: float(np.mean(x)),
    "median": lambda x: float(np.median(x)),
    "iqm": iqm,
    "optimality_gap": optimality_gap,
}


def stratified_interval(
    scores: Any,
    statistic: Callable[[Any], float],
    *,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> Interval:
    """``statistic`` of a ``(runs, tasks)`` score matrix with a stratified bootstrap interval.

    Runs (or samples) are resampled within each task, independently across tasks
    (rliable's stratified bootstrap). With one run there is nothing to resample
    within a task, so tasks are resampled instead.
    """
    matrix = np.atleast_2d(np.asarray(scores, dtype=float))
    value = float(statistic(matrix))
    runs, tasks = matrix.shape
    if matrix.size < 2 or np.all(matrix == matrix.flat[0]):
        return Interval(
            value=value, low=value, high=value, n=int(matrix.size), confidence=confidence
        )
    interval = functools.partial(
        _percentile_interval,
        value=value,
        n=int(matrix.size),
        confidence=confidence,
        n_resamples=n_resamples,
        seed=seed,
    )
    if runs == 1:
        return interval((matrix[0],), lambda x, axis=-1: np.apply_along_axis(statistic, axis, x))

    def per_task(*columns: np.ndarray, axis: int = -1) -> Any:
        stacked = np.stack(columns, axis=-1)  # (..., runs, tasks)
        flat = stacked.reshape(-1, runs, tasks)
        values = np.array([statistic(m) for m in flat])
        return values.reshape(stacked.shape[:-2])

    return interval(tuple(matrix[:, t] for t in range(tasks)), per_task, vectorized=True)


def performance_profile(scores: Any, thresholds: Sequence[float]) -> list[float]:
    """Fraction of scores at or above each threshold ``τ``: ``mean(x ≥ τ)``."""
    x = np.asarray(scores, dtype=float).ravel()
    return [float((x >= tau).mean()) for tau in thresholds]


def probability_of_improvement(a: Sequence[Sequence[float]], b: Sequence[Sequence[float]]) -> float:
    """``P(X_B > X_A)`` averaged over tasks (rliable's definition; ties count half).

    ``a[t]`` and ``b[t]`` are the scores of task ``t``'s runs or samples; each task
    contributes the Mann-Whitney probability that a score of B beats one of A.
    """
    per_task = []
    for xs, ys in zip(a, b, strict=True):
        x = np.asarray(xs, dtype=float)[:, None]
        y = np.asarray(ys, dtype=float)[None, :]
        per_task.append(float(((y > x) + 0.5 * (y == x)).mean()))
    return float(np.mean(per_task)) if per_task else math.nan


def probability_of_improvement_interval(
    a: Sequence[Sequence[float]],
    b: Sequence[Sequence[float]],
    *,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> Interval:
    """:func:`probability_of_improvement` with a bootstrap interval over tasks."""
    per_task = np.array([probability_of_improvement([x], [y]) for x, y in zip(a, b, strict=True)])
    value = float(per_task.mean()) if per_task.size else math.nan
    if per_task.size < 2 or np.all(per_task == per_task[0]):
        return Interval(
            value=value, low=value, high=value, n=int(per_task.size), confidence=confidence
        )
    return _percentile_interval(
        (per_task,),
        np.mean,
        value=value,
        n=int(per_task.size),
        confidence=confidence,
        n_resamples=n_resamples,
        seed=seed,
    )


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

    def statistic(*samples: np.ndarray, axis: int = -1) -> Any:
        return function(*(np.mean(s, axis=axis) for s in samples))

    return _percentile_interval(
        tuple(data),
        statistic,
        value=value,
        n=n,
        confidence=confidence,
        n_resamples=n_resamples,
        seed=seed,
        paired=True,
        vectorized=True,
    )


def harmonic_mean(a: Any, b: Any) -> Any:
    """``2ab / (a + b)``, 0 where ``a + b`` is 0 (works on arrays)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        result = np.where(a + b > 0, 2 * a * b / (a + b), 0.0)
    return result if result.ndim else float(result)


def task_groups(episodes: Sequence[Episode]) -> dict[str, list[Episode]]:
    """Episodes grouped by task id, in first-seen order."""
    groups: dict[str, list[Episode]] = {}
    for episode in episodes:
        groups.setdefault(str(episode.task_id), []).append(episode)
    return groups


def final_answer(episode: Episode) -> str | None:
    """The answer an env recorded on the episode's last turn (``info["final_answer"]``), if any."""
    if not episode.turns:
        return None
    answer = episode.turns[-1].info.get("final_answer")
    return str(answer) if answer is not None else None


def token_entropy(episode: Episode) -> float | None:
    """Mean negative log-prob of the episode's sampled tokens (a Monte Carlo estimate of the
    policy's per-token entropy), when the agent recorded log-probs."""
    total = count = 0.0
    for turn in episode.turns:
        agent = turn.info.get("agent")
        if isinstance(agent, dict) and "logprob_sum" in agent and agent.get("sampled_tokens"):
            total += float(agent["logprob_sum"])
            count += float(agent["sampled_tokens"])
    return -total / count if count else None


def score_matrix(groups: dict[str, list[Episode]], metric: str = "success") -> np.ndarray:
    """``(samples, tasks)`` per-episode scores when every task has the same number of samples,
    else ``(1, tasks)`` of per-task means."""

    def score(e: Episode) -> float:
        return (
            float(e.success)
            if metric == "success"
            else float(e.metrics.get(metric, getattr(e, metric, 0.0)))
        )

    columns = [[score(e) for e in group] for group in groups.values()]
    if columns and len({len(c) for c in columns}) == 1:
        return np.array(columns, dtype=float).T
    return np.array([[float(np.mean(c)) for c in columns]], dtype=float)


def of_task_means(function: Callable[[Any], float]) -> Callable[[Any], float]:
    """``function`` applied to the per-task means of a ``(samples, tasks)`` matrix."""

    def statistic(matrix: Any) -> float:
        return function(np.mean(matrix, axis=0))

    return statistic


PROFILE_THRESHOLDS = [round(0.1 * i, 1) for i in range(11)]


def summarize_episodes(
    episodes: Sequence[Episode],
    *,
    derived: Mapping[str, DerivedMetric] | None = None,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """Every statistic of an evaluation, each with its interval and the counts behind it.

    - ``metrics``: each episode metric's mean (a metric only some episodes define is
      averaged over those; ``n`` says how many), and env-derived metrics;
    - ``pass_at_k``: mean unbiased pass@k over tasks for k = 1, 2, 4, ... up to the
      fewest samples of any task, with bootstrap intervals over tasks;
    - ``answer_entropy`` (envs with a final answer) and ``token_entropy`` (agents that
      record log-probs), averaged over tasks / episodes;
    - ``aggregates``: mean, median, IQM and optimality gap of per-task success with
      stratified bootstrap intervals, and a performance profile.
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
    groups = task_groups(episodes)
    samples = [len(g) for g in groups.values()]
    summary: dict[str, Any] = {
        "counts": {
            "episodes": len(episodes),
            "tasks": len(groups),
            "samples_per_task": {"min": min(samples), "max": max(samples)}
            if samples
            else {"min": 0, "max": 0},
        },
        "metrics": metrics,
    }
    if not episodes:
        return summary
    counts = [(len(g), sum(e.success for e in g)) for g in groups.values()]
    summary["pass_at_k"] = {
        str(k): pass_at_k_tasks(counts, k, confidence=confidence, seed=seed).model_dump()
        for k in powers_of_two(min(samples))
    }
    answers = [[final_answer(e) for e in g] for g in groups.values()]
    if any(a is not None for group in answers for a in group):
        per_task = [answer_entropy([a for a in group if a is not None]) for group in answers]
        summary["answer_entropy"] = mean_interval(
            per_task, confidence=confidence, seed=seed
        ).model_dump()
    entropies = [h for h in (token_entropy(e) for e in episodes) if h is not None]
    if entropies:
        summary["token_entropy"] = mean_interval(
            entropies, confidence=confidence, seed=seed
        ).model_dump()
    matrix = score_matrix(groups)
    summary["aggregates"] = {
        "success": {
            name: stratified_interval(
                matrix,
                of_task_means(function),
                confidence=confidence,
                seed=seed,
            ).model_dump()
            for name, function in AGGREGATES.items()
        }
    }
    summary["performance_profile"] = {
        "thresholds": PROFILE_THRESHOLDS,
        "success": performance_profile(matrix.mean(axis=0), PROFILE_THRESHOLDS),
    }
    return summary
