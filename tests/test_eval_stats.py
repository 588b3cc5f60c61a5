"""Evaluation statistics and run comparison: estimators against enumeration and hand-computed cases."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from rounds.cli import app
from rounds.compare import CompareError, compare_runs, load_run
from rounds.records import Episode, Turn
from rounds.stats import (
    AGGREGATES,
    answer_entropy,
    iqm,
    mean,
    mean_interval,
    optimality_gap,
    pass_at_k,
    performance_profile,
    powers_of_two,
    probability_of_improvement,
    profile_polyline,
    profile_steps,
    stratified_interval,
    stratified_intervals,
    summarize_episodes,
)
from rounds.storage import JsonlWriter, RunDir


@pytest.mark.parametrize("n", range(1, 8))
def test_pass_at_k_matches_enumeration_of_all_k_subsets(n: int) -> None:
    for c in range(n + 1):
        samples = [1] * c + [0] * (n - c)
        for k in range(1, n + 1):
            subsets = list(itertools.combinations(range(n), k))
            brute = sum(any(samples[i] for i in s) for s in subsets) / len(subsets)
            assert pass_at_k(n, c, k) == pytest.approx(brute, abs=1e-12)


def test_pass_at_k_is_stable_for_large_n_and_checks_its_arguments() -> None:
    assert pass_at_k(1000, 1, 1) == pytest.approx(0.001)
    assert pass_at_k(1000, 500, 900) == 1.0
    assert 0.0 < pass_at_k(10_000, 3, 50) < 1.0
    with pytest.raises(ValueError):
        pass_at_k(4, 5, 1)
    with pytest.raises(ValueError):
        pass_at_k(4, 1, 5)
    assert (
        powers_of_two(4) == [1, 2, 4]
        and powers_of_two(6) == [1, 2, 4, 6]
        and powers_of_two(1) == [1]
    )


def test_aggregates_on_hand_computed_cases() -> None:
    assert iqm([1, 2, 3, 4, 5, 6, 7, 8]) == 4.5  # mean of the middle half: 3, 4, 5, 6
    assert iqm([0, 0, 0, 0, 1, 1, 1, 1]) == 0.5
    assert optimality_gap([0.5, 1.2, 0.9]) == pytest.approx((0.5 + 0.0 + 0.1) / 3)
    assert performance_profile([0.0, 0.5, 1.0, 1.0], [0.0, 0.5, 0.75, 1.0]) == [1.0, 0.75, 0.5, 0.5]
    assert answer_entropy(["flu", "flu", "pneumonia", "pneumonia"]) == pytest.approx(math.log(2))
    assert answer_entropy(["x", "x", "x"]) == 0.0


def test_stratified_bootstrap_resamples_within_tasks() -> None:
    # One task with two samples scoring 0 and 1: resampled means are 0, 0.5, 1 w.p. 1/4, 1/2, 1/4.
    two = stratified_interval([[0.0, 1.0]], mean)
    assert (two.value, two.low, two.high) == (0.5, 0.0, 1.0)
    assert two.resampled == "samples within tasks" and two.n == 1
    # Every sample scores the same on each task: resampling within tasks changes nothing,
    # even though the tasks differ (resampling tasks would give a wide interval).
    per_task = [[0.0] * 5, [0.5] * 5, [1.0] * 5, [0.25] * 5]
    same = stratified_interval(per_task, iqm)
    assert same.low == same.high == same.value
    one_sample = stratified_interval([[0.0], [0.5], [1.0], [0.25]], mean)
    assert one_sample.low < one_sample.value < one_sample.high  # one sample: tasks resampled
    assert one_sample.resampled == "tasks" and one_sample.n == 4


def direct_bootstrap(
    per_task: list[list[float]], aggregate: str, resamples: int = 4000, seed: int = 1
) -> tuple[float, float]:
    """A plain-numpy bootstrap written independently of rounds.stats: the percentile
    interval of samples resampled within each task when every task has two or more,
    else tasks resampled with the BCa interval (Efron & Tibshirani 14.3; resamples tied
    with the estimate count half in the bias correction), falling back to the percentile
    interval where BCa is undefined or excludes the estimate."""
    from scipy.stats import norm

    functions = {
        "mean": lambda row: row.mean(),
        "median": np.median,
        "iqm": lambda row: np.sort(row)[row.size // 4 : row.size - row.size // 4].mean(),
        "optimality_gap": lambda row: np.maximum(1.0 - row, 0.0).mean(),
    }
    stat = functions[aggregate]
    rng = np.random.default_rng(seed)
    tasks = [np.asarray(s, dtype=float) for s in per_task]
    if all(t.size >= 2 for t in tasks):
        means = np.stack(
            [t[rng.integers(0, t.size, size=(resamples, t.size))].mean(axis=1) for t in tasks],
            axis=1,
        )
        low, high = np.percentile([stat(row) for row in means], [2.5, 97.5])
        return float(low), float(high)
    values = np.array([t.mean() for t in tasks])
    boot = np.array(
        [stat(row) for row in values[rng.integers(0, values.size, (resamples, values.size))]]
    )
    p_low, p_high = np.percentile(boot, [2.5, 97.5])
    percentile = (float(p_low), float(p_high))
    theta = stat(values)
    jack = np.array([stat(np.delete(values, i)) for i in range(values.size)])
    d = jack.mean() - jack
    with np.errstate(divide="ignore", invalid="ignore"):
        z0 = norm.ppf((np.sum(boot < theta) + np.sum(boot <= theta)) / (2 * boot.size))
        a = (d**3).sum() / (6 * ((d**2).sum()) ** 1.5)
        z = norm.ppf([0.025, 0.975])
        levels = norm.cdf(z0 + (z0 + z) / (1 - a * (z0 + z)))
    if not np.all(np.isfinite(levels)):
        return percentile
    low, high = np.percentile(boot, levels * 100)
    if not low <= theta <= high:
        return percentile
    return float(low), float(high)


def skewed_scores(samples: list[int], seed: int = 3) -> list[list[float]]:
    """Binary scores of tasks that are mostly easy (a median of 1, a mean near 0.85)."""
    rng = np.random.default_rng(seed)
    p = np.where(rng.random(len(samples)) < 0.8, 0.97, 0.3)
    return [
        [float(rng.random() < p_t) for _ in range(k)] for p_t, k in zip(p, samples, strict=True)
    ]


@pytest.mark.parametrize(
    "samples",
    [[1] * 48, [4] * 40, [2, 3, 5, 4] * 10, [1, 3, 4, 2] * 10],
    ids=["K=1", "K=4", "uneven K>=2", "uneven K with singles"],
)
@pytest.mark.parametrize("aggregate", ["mean", "median", "iqm", "optimality_gap"])
def test_each_aggregate_interval_matches_a_direct_bootstrap(
    samples: list[int], aggregate: str
) -> None:
    per_task = skewed_scores(samples)
    got = stratified_interval(per_task, AGGREGATES[aggregate], n_resamples=4000)
    low, high = direct_bootstrap(per_task, aggregate)
    assert got.low is not None and got.high is not None
    assert got.low <= got.value <= got.high
    # Monte Carlo error of two independent 4,000-resample bootstraps (under one atom,
    # 1/48, of a discrete bootstrap distribution); the bug this guards against put the
    # median's interval at the mean's, about 0.1 away.
    assert got.low == pytest.approx(low, abs=0.02)
    assert got.high == pytest.approx(high, abs=0.02)
    assert got.resampled == ("tasks" if 1 in samples else "samples within tasks")


@pytest.mark.parametrize("samples", [[1] * 30, [3] * 30, [1, 2, 5] * 10])
def test_aggregates_from_one_set_of_resamples_match_each_alone(samples: list[int]) -> None:
    per_task = skewed_scores(samples, seed=11)
    together = stratified_intervals(per_task, AGGREGATES)
    for name, aggregate in AGGREGATES.items():
        assert together[name] == stratified_interval(per_task, aggregate)


def test_summary_median_interval_contains_the_median_with_one_episode_per_task() -> None:
    # 38 of 40 tasks solved once each: the median is 1 and so is every resample's median.
    episodes = [episode(f"t{i}", success=i >= 2) for i in range(40)]
    success = summarize_episodes(episodes)["aggregates"]["success"]
    assert (success["median"]["value"], success["median"]["low"], success["median"]["high"]) == (
        1.0,
        1.0,
        1.0,
    )
    assert success["iqm"]["low"] == success["iqm"]["high"] == 1.0
    assert success["mean"]["low"] < 0.95 < success["mean"]["high"]
    # With one episode per task the mean of per-task success is pass@1: one interval.
    summary = summarize_episodes(episodes)
    assert {k: success["mean"][k] for k in ("value", "low", "high")} == {
        k: summary["pass_at_k"]["1"][k] for k in ("value", "low", "high")
    }
    # Uneven samples per task (one task sampled twice) are not collapsed to the mean either.
    uneven = summarize_episodes([*episodes, episode("t5", True)])["aggregates"]["success"]
    assert uneven["median"]["low"] == uneven["median"]["high"] == 1.0
    assert uneven["median"]["resampled"] == "tasks"


def polyline_value(xs: list[float], ys: list[float], tau: float) -> float:
    """The height of a drawn step polyline at ``tau`` (strictly inside a flat segment)."""
    for x0, x1, y0, y1 in zip(xs, xs[1:], ys, ys[1:], strict=False):
        if x0 < tau < x1:
            assert y0 == y1, "a step function is flat between its breakpoints"
            return y0
    raise AssertionError(f"no flat segment covers {tau}")


def test_performance_profile_is_the_exact_step_function() -> None:
    # A random agent solving 4 of 100 tasks: at every threshold above 0 the fraction is 4%.
    episodes = [episode(f"t{i}", success=i < 4) for i in range(100)]
    profile = summarize_episodes(episodes)["performance_profile"]["success"]
    assert profile == {"thresholds": [0.0, 1.0], "fraction": [1.0, 0.04]}
    xs, ys = profile_polyline(profile)
    for tau in (0.01, 0.05, 0.5, 0.99):
        assert polyline_value(xs, ys, tau) == 0.04
    rng = np.random.default_rng(5)
    values = rng.integers(0, 5, size=60) / 4  # per-task success rates of K = 4
    xs, ys = profile_polyline(profile_steps(values))
    for tau in rng.random(300):
        if tau not in values:
            assert polyline_value(xs, ys, tau) == pytest.approx(np.mean(values >= tau))


def test_performance_profile_plot_draws_the_exact_step_function(tmp_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rounds.compare import draw_performance_profiles

    tasks = [f"task-{i:03d}" for i in range(100)]
    random_run = [episode(t, i < 4) for i, t in enumerate(tasks)]
    expert_run = [episode(t, i < 90) for i, t in enumerate(tasks)]
    comparison = compare_runs(
        [
            load_run(write_run(tmp_path / "random", random_run, 1)),
            load_run(write_run(tmp_path / "expert", expert_run, 1)),
        ]
    )
    fig, ax = plt.subplots()
    try:
        draw_performance_profiles(ax, comparison)
        lines = {line.get_label(): line.get_xydata() for line in ax.get_lines()}
    finally:
        plt.close(fig)
    for label, solved in (("random", 0.04), ("expert", 0.90)):
        xs, ys = lines[label][:, 0].tolist(), lines[label][:, 1].tolist()
        assert polyline_value(xs, ys, 0.05) == pytest.approx(solved)
        assert polyline_value(xs, ys, 0.95) == pytest.approx(solved)
        assert ys[0] == 1.0 and xs[0] == 0.0


def test_interval_coverage_is_close_to_95_percent() -> None:
    rng = np.random.default_rng(7)
    covered = 0
    repeats = 300
    for _ in range(repeats):
        data = rng.normal(3.0, 2.0, size=40)
        interval = mean_interval(data, n_resamples=999, seed=int(rng.integers(1 << 30)))
        covered += interval.low <= 3.0 <= interval.high
    assert 0.91 <= covered / repeats <= 0.98


def test_probability_of_improvement() -> None:
    assert probability_of_improvement([[0, 0]], [[1, 1]]) == 1.0
    assert probability_of_improvement([[1]], [[1]]) == 0.5  # ties count half
    # task 1: pairs (A, B) = (0,1) win, (0,0) tie, (1,1) tie, (1,0) loss -> (1 + 0.5 + 0.5) / 4 = 0.5
    # task 2: (1, 0) loss -> 0; the mean over tasks is 0.25
    assert probability_of_improvement([[0, 1], [1]], [[1, 0], [0]]) == pytest.approx(0.25)


def episode(task: str, success: bool, answer: str = "a") -> Episode:
    return Episode(
        env_id="rounds/DiagGym-v0",
        task_id=task,
        outcome=1.0 if success else 0.1,
        metrics={"success": float(success), "exam_f1": 0.5 if success else 0.2},
        turns=[
            Turn(index=0, observation="o", action="diagnosis: x", info={"final_answer": answer})
        ],
    )


def write_run(path: Path, episodes: list[Episode], k: int) -> Path:
    run = RunDir(path)
    run.write_config(
        {"kind": "eval", "env_id": "rounds/DiagGym-v0", "agent": path.name, "samples_per_task": k}
    )
    with JsonlWriter(run.episodes_path) as writer:
        for e in episodes:
            writer.write(e)
    return path


def test_summary_reports_pass_at_k_entropy_and_aggregates() -> None:
    episodes = [
        episode(f"t{t}", success=(k < t), answer=f"d{k % (t + 1)}")
        for t in range(4)
        for k in range(4)
    ]
    summary = summarize_episodes(episodes)
    assert summary["counts"]["samples_per_task"] == {"min": 4, "max": 4}
    # tasks solve 0, 1, 2, 3 of 4 samples
    assert summary["pass_at_k"]["1"]["value"] == pytest.approx(np.mean([0, 0.25, 0.5, 0.75]))
    assert summary["pass_at_k"]["4"]["value"] == pytest.approx(0.75)
    assert summary["answer_entropy"]["value"] > 0
    assert set(summary["aggregates"]["success"]) == {"mean", "median", "iqm", "optimality_gap"}
    assert summary["performance_profile"]["success"] == {
        "thresholds": [0.0, 0.25, 0.5, 0.75],
        "fraction": [1.0, 0.75, 0.5, 0.25],
    }


def test_compare_finds_a_dominating_run(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    tasks = [f"task-{i:02d}" for i in range(30)]
    a = [episode(t, bool(rng.random() < 0.05)) for t in tasks for _ in range(4)]
    b = [episode(t, bool(rng.random() < 0.98)) for t in tasks for _ in range(4)]
    b += [episode("only-in-b", True)] * 4
    run_a, run_b = write_run(tmp_path / "a", a, 4), write_run(tmp_path / "b", b, 4)
    comparison = compare_runs([load_run(run_a), load_run(run_b)])
    assert comparison["shared_tasks"] == 30
    assert "b: tasks left out because not every run has them: 1 of 31" in comparison["warnings"]
    poi = comparison["probability_of_improvement"][1]
    assert poi["value"] > 0.9 and poi["low"] > 0.8
    diff = comparison["metrics"]["success"]["difference"][1]
    assert diff["low"] > 0.4
    assert comparison["pass_at_k"][1]["4"]["value"] >= comparison["pass_at_k"][1]["1"]["value"]
    support = comparison["support"][1]
    assert len(support["only_this_run"]) > len(support["only_baseline"])

    result = CliRunner().invoke(
        app,
        ["compare", str(run_a), str(run_b), "--out", str(tmp_path / "report")],
        terminal_width=200,
    )
    assert result.exit_code == 0, result.output
    assert "P(improvement)" in result.output and "pass@k" in result.output
    report = (tmp_path / "report" / "comparison.md").read_text()
    assert "## pass@k" in report and "P(b > a)" in report
    for name in ("pass_at_k.png", "performance_profiles.png", "iqm.png"):
        assert (tmp_path / "report" / name).read_bytes()[:4] == b"\x89PNG"
    assert json.loads((tmp_path / "report" / "comparison.json").read_text())["shared_tasks"] == 30


def test_compare_mismatches_and_bad_directories(tmp_path: Path) -> None:
    a = write_run(tmp_path / "a", [episode(f"t{i}", True) for i in range(3) for _ in range(4)], 4)
    b = write_run(tmp_path / "b", [episode(f"t{i}", i == 0) for i in range(3) for _ in range(2)], 2)
    comparison = compare_runs([load_run(a), load_run(b)])
    assert any("different samples per task" in w for w in comparison["warnings"])
    assert list(comparison["pass_at_k"][0]) == ["1", "2"]
    other = write_run(tmp_path / "c", [episode("elsewhere", True)], 1)
    with pytest.raises(CompareError, match="share no task"):
        compare_runs([load_run(a), load_run(other)])
    (tmp_path / "empty").mkdir()
    for bad, needle in (
        (tmp_path / "empty", "no episodes.jsonl"),
        (tmp_path / "missing", "not a directory"),
    ):
        result = CliRunner().invoke(app, ["compare", str(a), str(bad)], terminal_width=300)
        assert (
            result.exit_code == 2 and needle in result.output and "Traceback" not in result.output
        )
    torn = tmp_path / "torn"
    torn.mkdir()
    (torn / "episodes.jsonl").write_text('{"env_id": "x", "turns": [')
    result = CliRunner().invoke(app, ["compare", str(a), str(torn)], terminal_width=300)
    assert result.exit_code == 2 and "no readable episodes" in result.output


def test_eval_with_samples_per_task_writes_pass_at_k(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = CliRunner().invoke(
        app,
        [
            "eval",
            "rounds/DiagGym-v0",
            "--agent",
            "random",
            "--tasks",
            "5",
            "--samples-per-task",
            "4",
            "--out",
            str(out),
        ],
        terminal_width=200,
    )
    assert result.exit_code == 0, result.output
    summary = RunDir(out).read_summary()
    assert summary["settings"]["samples_per_task"] == 4 and summary["counts"]["tasks"] == 5
    assert set(summary["pass_at_k"]) == {"1", "2", "4"} and "answer_entropy" in summary
    assert "pass@4" in result.output


def test_training_runs_a_held_out_evaluation(tmp_path: Path) -> None:
    import toy_envs  # noqa: F401

    from rounds.trainers import GRPOConfig, GRPOTrainer

    config = GRPOConfig(
        env_id="toys/Vowel-v0",
        model="tiny",
        steps=2,
        group_size=4,
        tasks_per_step=2,
        max_new_tokens=4,
        max_episode_tokens=256,
        eval_every=2,
        eval_tasks=3,
        eval_samples_per_task=2,
        output_dir=str(tmp_path / "t"),
    )
    GRPOTrainer(config=config).train()
    rows = list(RunDir(tmp_path / "t").metrics())
    assert "eval/pass@1" not in rows[0] and {"eval/success", "eval/pass@1", "eval/pass@2"} <= set(
        rows[1]
    )
    assert rows[1]["eval/pass@2"] >= rows[1]["eval/pass@1"]
