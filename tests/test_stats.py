from __future__ import annotations

import numpy as np
import pytest

from rounds.records import Episode
from rounds.stats import derived_interval, harmonic_mean, mean_interval, summarize_episodes


def test_mean_interval_basic_cases() -> None:
    constant = mean_interval([1.0, 1.0, 1.0])
    assert (constant.value, constant.low, constant.high, constant.n) == (1.0, 1.0, 1.0, 3)
    single = mean_interval([0.5])
    assert single.value == 0.5 and single.low is None
    empty = mean_interval([])
    assert empty.n == 0 and empty.low is None
    data = np.random.default_rng(0).normal(10.0, 2.0, size=400)
    interval = mean_interval(data, seed=1)
    assert interval.low < 10.0 < interval.high
    # a 95% interval of the mean is about ±1.96·σ/√n wide
    assert interval.high - interval.low == pytest.approx(2 * 1.96 * 2.0 / 20, rel=0.2)


def test_harmonic_mean_and_derived_interval() -> None:
    assert harmonic_mean(0.75, 0.5) == pytest.approx(0.6)
    assert harmonic_mean(0.0, 0.0) == 0.0
    precision = [1.0, 0.5, 0.0, 1.0]
    recall = [0.5, 0.5, 0.0, 1.0]
    # case-averaged P = 0.625, R = 0.5 -> F1 = 2·0.625·0.5 / 1.125
    result = derived_interval([precision, recall], harmonic_mean, seed=0)
    assert result.value == pytest.approx(2 * 0.625 * 0.5 / 1.125)
    assert result.low <= result.value <= result.high


def test_summary_handles_metrics_some_episodes_lack() -> None:
    episodes = [
        Episode(
            env_id="x",
            task_id="a",
            outcome=1.0,
            metrics={"success": 1.0, "hit_ratio": 0.5, "p": 1.0, "r": 0.5},
        ),
        Episode(env_id="x", task_id="b", outcome=0.0, metrics={"success": 0.0, "p": 0.0, "r": 0.0}),
    ]
    summary = summarize_episodes(episodes, derived={"f1": (("p", "r"), harmonic_mean)})
    metrics = summary["metrics"]
    assert metrics["hit_ratio"]["n"] == 1 and metrics["hit_ratio"]["value"] == 0.5
    assert metrics["success"]["value"] == 0.5 and metrics["success"]["n"] == 2
    assert metrics["f1"]["value"] == pytest.approx(harmonic_mean(0.5, 0.25))
    assert summary["counts"] == {
        "episodes": 2,
        "tasks": 2,
        "samples_per_task": {"min": 1, "max": 1},
    }
