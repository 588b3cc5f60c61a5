"""Evaluation statistics: intervals, pass@k, answer entropy, robust aggregates, run summaries.

Resampling uses :func:`scipy.stats.bootstrap` rather than a hand-written loop
(rliable's own bootstrap does not import with current pandas through its ``arch``
dependency). Passing each task's scores to SciPy as a separate sample makes its
bootstrap stratified: scores are resampled within each task, as rliable does.
SciPy is imported on first use to keep ``import rounds`` light.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel

from rounds.records import Episode


class Interval(BaseModel):
    """A statistic with its confidence interval (``low``/``high`` are None with fewer than 2 values).

    ``resampled`` names the bootstrap's resampling unit (``"episodes"``, ``"tasks"`` or
    ``"samples within tasks"``): intervals of the same data over different units answer
    different questions and differ in width, so a report says which it shows.
    """

    value: float
    low: float | None
    high: float | None
    n: int
    confidence: float = 0.95
    resampled: str | None = None


#: Values of bootstrap resamples held in memory at once (bounds memory on huge runs).
_RESAMPLE_BUDGET = 4_000_000
#: Above this many values BCa's jackknife costs more than its correction is worth.
_BCA_MAX_VALUES = 5_000


def mean_interval(
    values: Sequence[float] | np.ndarray,
    *,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> Interval:
    """The mean of ``values`` with a BCa bootstrap interval (percentile above
    :data:`_BCA_MAX_VALUES` values).

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
    return _bootstrap_interval(
        (data,),
        lambda x, axis=-1: np.mean(x, axis=axis),
        value=mean,
        n=n,
        confidence=confidence,
        n_resamples=n_resamples,
        seed=seed,
        methods=("BCa", "percentile"),
        vectorized=True,
    )


def _bootstrap_bounds(
    samples: tuple[Any, ...],
    statistic: Callable[..., Any],
    values: Sequence[float],
    *,
    confidence: float,
    n_resamples: int,
    seed: int,
    methods: tuple[str, ...] = ("percentile",),
    **options: Any,
) -> list[tuple[float, float]]:
    """Bootstrap bounds of each of ``values``, the estimates of a vector-valued
    ``statistic`` (one row per estimate) over ``samples``, all from one set of resamples.

    Each entry gets the first of ``methods`` whose interval is finite and contains its
    estimate (BCa is undefined, or can exclude the estimate, when resampled values
    pile up on ties; the percentile interval always qualifies). ``options`` go to
    :func:`scipy.stats.bootstrap`, e.g. ``paired``, ``vectorized``.

    Memory stays bounded on huge runs: resamples are drawn in batches of at most
    :data:`_RESAMPLE_BUDGET` values, and BCa (whose jackknife evaluates the statistic
    once per value) is skipped above :data:`_BCA_MAX_VALUES` values, where its
    corrections to the percentile interval are negligible (they shrink as 1/√n).
    """
    import warnings

    from scipy import stats

    estimates = np.asarray(values, dtype=float)
    total = sum(int(np.size(s)) for s in samples)
    options.setdefault("batch", max(1, min(n_resamples, _RESAMPLE_BUDGET // max(total, 1))))
    if total > _BCA_MAX_VALUES:
        methods = tuple(m for m in methods if m != "BCa") or ("percentile",)
    low, high = np.full(estimates.shape, np.nan), np.full(estimates.shape, np.nan)
    pending = np.ones(estimates.shape, dtype=bool)
    for method in methods:
        with warnings.catch_warnings():  # a degenerate BCa falls through to the next method
            warnings.simplefilter("ignore", RuntimeWarning)
            warnings.simplefilter("ignore", stats.DegenerateDataWarning)
            result = stats.bootstrap(
                samples,
                statistic,
                confidence_level=confidence,
                n_resamples=n_resamples,
                method=method,
                random_state=np.random.default_rng(seed),
                **options,
            )
        lows = np.broadcast_to(np.asarray(result.confidence_interval.low, dtype=float), low.shape)
        highs = np.broadcast_to(
            np.asarray(result.confidence_interval.high, dtype=float), high.shape
        )
        contains = np.isfinite(lows) & np.isfinite(highs) & (lows <= estimates)
        usable = pending & (contains & (estimates <= highs) | (method == "percentile"))
        low[usable], high[usable] = lows[usable], highs[usable]
        pending &= ~usable
        if not pending.any():
            break
    return [(float(a), float(b)) for a, b in zip(low, high, strict=True)]


def _bootstrap_interval(
    samples: tuple[Any, ...],
    statistic: Callable[..., Any],
    *,
    value: float,
    n: int,
    confidence: float,
    n_resamples: int,
    seed: int,
    methods: tuple[str, ...] = ("percentile",),
    **options: Any,
) -> Interval:
    """``value`` with the bootstrap interval of a scalar ``statistic`` (see
    :func:`_bootstrap_bounds`)."""

    def as_row(*resampled: np.ndarray, axis: int = -1) -> Any:
        return np.expand_dims(np.asarray(statistic(*resampled, axis=axis)), 0)

    [(low, high)] = _bootstrap_bounds(
        samples,
        as_row,
        [value],
        confidence=confidence,
        n_resamples=n_resamples,
        seed=seed,
        methods=methods,
        **options,
    )
    return Interval(value=value, low=low, high=high, n=n, confidence=confidence)


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
    interval = mean_interval(values, confidence=confidence, seed=seed)
    return interval.model_copy(update={"resampled": "tasks"})


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


def _scalar_or_array(result: Any) -> Any:
    """A float for a 0-d result (a whole-array statistic), else the array (one value per row)."""
    return float(result) if np.ndim(result) == 0 else result


def iqm(scores: Any, axis: int | None = None) -> Any:
    """Interquartile mean: the mean of the middle 50% of the scores (25% trimmed each side).

    ``axis=None`` uses every score; ``axis=-1`` gives one IQM per row (for the bootstrap).
    """
    from scipy import stats

    return _scalar_or_array(stats.trim_mean(np.asarray(scores, dtype=float), 0.25, axis=axis))


def optimality_gap(scores: Any, threshold: float = 1.0, axis: int | None = None) -> Any:
    """How far scores fall short of ``threshold`` on average: ``mean(max(threshold − x, 0))``."""
    shortfall = np.maximum(threshold - np.asarray(scores, dtype=float), 0.0)
    return _scalar_or_array(shortfall.mean(axis=axis))


def median(scores: Any, axis: int | None = None) -> Any:
    """The median of the scores (of each row with ``axis=-1``)."""
    return _scalar_or_array(np.median(np.asarray(scores, dtype=float), axis=axis))


def mean(scores: Any, axis: int | None = None) -> Any:
    """The mean of the scores (of each row with ``axis=-1``)."""
    return _scalar_or_array(np.mean(np.asarray(scores, dtype=float), axis=axis))


#: Robust aggregates of per-task scores (rliable's set). Each takes ``axis`` so the
#: bootstrap can evaluate thousands of resamples at once.
AGGREGATES: dict[str, Callable[..., Any]] = {
    "mean": mean,
    "median": median,
    "iqm": iqm,
    "optimality_gap": optimality_gap,
}


def stratified_interval(
    per_task: Sequence[Sequence[float]] | np.ndarray,
    aggregate: Callable[..., Any],
    *,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> Interval:
    """``aggregate`` of the per-task mean scores with a bootstrap interval.

    ``per_task[t]`` holds task ``t``'s scores (runs or samples; tasks may have
    different numbers). ``aggregate(values, axis=-1)`` maps per-task means to one
    number per row, e.g. :data:`AGGREGATES`.

    - Every task has at least two samples: the stratified bootstrap (rliable) —
      samples are resampled within each task, independently across tasks, the
      per-task means recomputed and aggregated. The task set is held fixed.
    - Some task has a single sample (e.g. one episode per task): there is nothing
      to resample within it, so tasks are resampled instead (the per-task means,
      with replacement) and ``aggregate`` is applied to each resample. The interval
      is BCa, as :func:`mean_interval`'s (so with one sample per task the mean's
      interval is pass@1's), or the percentile interval where BCa is undefined or
      excludes the estimate (ties, e.g. a median of 0/1 scores).

    Either way the interval is the aggregate's own, so a median's interval is the
    median's, never the mean's; ``resampled`` records which unit was used and ``n``
    counts tasks. The stratified case uses the percentile interval, as rliable does.
    """
    intervals = stratified_intervals(
        per_task,
        {"aggregate": aggregate},
        confidence=confidence,
        n_resamples=n_resamples,
        seed=seed,
    )
    return intervals["aggregate"]


def stratified_intervals(
    per_task: Sequence[Sequence[float]] | np.ndarray,
    aggregates: Mapping[str, Callable[..., Any]],
    *,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> dict[str, Interval]:
    """:func:`stratified_interval` of several aggregates, from one set of resamples
    (each interval is the one :func:`stratified_interval` gives; resampling once
    makes the four robust aggregates of a run cost one bootstrap, not four)."""
    tasks = [np.asarray(s, dtype=float).ravel() for s in per_task]
    if not tasks or any(t.size == 0 for t in tasks):
        raise ValueError("stratified_interval needs at least one score for every task")
    functions = list(aggregates.values())
    means = np.array([t.mean() for t in tasks])
    values = [float(f(means, axis=-1)) for f in functions]
    n = len(tasks)
    within = all(t.size >= 2 for t in tasks)
    unit = "samples within tasks" if within else "tasks"

    def intervals(bounds: Sequence[tuple[float | None, float | None]]) -> dict[str, Interval]:
        return {
            name: Interval(
                value=value, low=low, high=high, n=n, confidence=confidence, resampled=unit
            )
            for name, value, (low, high) in zip(aggregates, values, bounds, strict=True)
        }

    def aggregated(task_means: np.ndarray) -> Any:
        return np.stack([np.asarray(f(task_means, axis=-1)) for f in functions], axis=0)

    if within:
        if all(np.all(t == t[0]) for t in tasks):
            return intervals([(v, v) for v in values])  # nothing varies within any task

        def statistic(*samples: np.ndarray, axis: int = -1) -> Any:
            return aggregated(np.stack([s.mean(axis=axis) for s in samples], axis=-1))

        data: tuple[np.ndarray, ...] = tuple(tasks)
    else:
        if n < 2:
            return intervals([(None, None)] * len(values))
        if np.all(means == means[0]):
            return intervals([(v, v) for v in values])

        def statistic(*samples: np.ndarray, axis: int = -1) -> Any:
            return aggregated(samples[0])

        data = (means,)
    bounds = _bootstrap_bounds(
        data,
        statistic,
        values,
        confidence=confidence,
        n_resamples=n_resamples,
        seed=seed,
        methods=("percentile",) if within else ("BCa", "percentile"),
        vectorized=True,
    )
    return intervals(bounds)


def performance_profile(scores: Any, thresholds: Sequence[float]) -> list[float]:
    """Fraction of scores at or above each threshold ``τ``: ``mean(x ≥ τ)``."""
    x = np.asarray(scores, dtype=float).ravel()
    return [float((x >= tau).mean()) for tau in thresholds]


def profile_steps(scores: Any, start: float = 0.0) -> dict[str, list[float]]:
    """The exact performance profile ``τ ↦ mean(x ≥ τ)`` of ``scores`` as its breakpoints.

    ``thresholds`` are ``start`` and every distinct score (ascending); ``fraction[i]``
    is ``mean(x ≥ thresholds[i])``, which is also the profile's value for every
    ``τ`` in ``(thresholds[i−1], thresholds[i]]`` (no score lies strictly between
    two breakpoints). Above the largest score the profile is 0. A fixed grid drawn
    as steps misplaces the drops: with per-task success of 0 or 1 the profile falls
    right after 0, not at the next grid point.
    """
    x = np.asarray(scores, dtype=float).ravel()
    thresholds = sorted({min(start, float(x.min())) if x.size else start, *map(float, x)})
    return {"thresholds": thresholds, "fraction": performance_profile(x, thresholds)}


def profile_polyline(
    profile: Mapping[str, Sequence[float]], end: float = 1.0
) -> tuple[list[float], list[float]]:
    """The vertices of :func:`profile_steps`'s step function for a plot, drawn exactly:
    flat at ``fraction[i]`` over ``(thresholds[i−1], thresholds[i]]``, a vertical drop
    after each breakpoint, and 0 after the largest score up to ``end``."""
    taus, fractions = list(profile["thresholds"]), list(profile["fraction"])
    if not taus:
        return [], []
    xs, ys = [taus[0]], [fractions[0]]
    for previous, tau, fraction in zip(taus, taus[1:], fractions[1:], strict=False):
        xs += [previous, tau]
        ys += [fraction, fraction]
    xs.append(taus[-1])
    ys.append(0.0)
    if end > taus[-1]:
        xs.append(end)
        ys.append(0.0)
    return xs, ys


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
    return _bootstrap_interval(
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

    return _bootstrap_interval(
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


def task_scores(
    groups: Mapping[str, Sequence[Episode]], metric: str = "success"
) -> list[list[float]]:
    """Each task's per-episode scores (``success``, or a metric the episodes report)."""

    def score(e: Episode) -> float:
        return (
            float(e.success)
            if metric == "success"
            else float(e.metrics.get(metric, getattr(e, metric, 0.0)))
        )

    return [[score(e) for e in group] for group in groups.values()]


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
      :func:`stratified_interval` intervals, and the exact performance profile
      (:func:`profile_steps`) of per-task success.

    Every interval records what it resampled: episode metrics resample episodes
    (how precisely these episodes fix the mean), pass@k and answer entropy resample
    tasks (they include the spread between tasks, so they are wider when tasks
    differ in difficulty).
    """

    def over(interval: Interval, unit: str) -> dict[str, Any]:
        return interval.model_copy(update={"resampled": unit}).model_dump()

    columns = episode_values(episodes)
    metrics = {
        name: over(mean_interval(values, confidence=confidence, seed=seed), "episodes")
        for name, values in sorted(columns.items())
    }
    rows = [{"outcome": e.outcome, **e.metrics} for e in episodes]
    for name, (needed, function) in (derived or {}).items():
        usable = [r for r in rows if all(c in r for c in needed)]
        if usable:
            metrics[name] = over(
                derived_interval(
                    [[r[c] for r in usable] for c in needed],
                    function,
                    confidence=confidence,
                    seed=seed,
                ),
                "episodes",
            )
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
        summary["answer_entropy"] = over(
            mean_interval(per_task, confidence=confidence, seed=seed), "tasks"
        )
    entropies = [h for h in (token_entropy(e) for e in episodes) if h is not None]
    if entropies:
        summary["token_entropy"] = over(
            mean_interval(entropies, confidence=confidence, seed=seed), "episodes"
        )
    success = task_scores(groups)
    summary["aggregates"] = {
        "success": {
            name: interval.model_dump()
            for name, interval in stratified_intervals(
                success, AGGREGATES, confidence=confidence, seed=seed
            ).items()
        }
    }
    summary["performance_profile"] = {
        "success": profile_steps([float(np.mean(s)) for s in success])
    }
    return summary
