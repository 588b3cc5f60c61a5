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
    answer_entropy,
    iqm,
    mean_interval,
    optimality_gap,
    pass_at_k,
    performance_profile,
    powers_of_two,
    probability_of_improvement,
    stratified_interval,
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
    # Two runs of one task scoring 0 and 1: resampled means are 0, 0.5, 1 w.p. 1/4, 1/2, 1/4.
    two = stratified_interval([[0.0], [1.0]], lambda m: float(np.mean(m)))
    assert (two.value, two.low, two.high) == (0.5, 0.0, 1.0)
    # Every run scores the same on each task: resampling within tasks changes nothing,
    # even though the tasks differ (resampling tasks would give a wide interval).
    matrix = np.array([[0.0, 0.5, 1.0, 0.25]] * 5)
    same = stratified_interval(matrix, lambda m: iqm(np.mean(m, axis=0)))
    assert same.low == same.high == same.value
    one_run = stratified_interval(matrix[:1], lambda m: float(np.mean(m)))
    assert one_run.low < one_run.value < one_run.high  # one run: tasks are resampled


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
    assert summary["performance_profile"]["success"][0] == 1.0


def test_compare_finds_a_dominating_run(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    tasks = [f"task-{i:02d}" for i in range(30)]
    a = [episode(t, bool(rng.random() < 0.05)) for t in tasks for _ in range(4)]
    b = [episode(t, bool(rng.random() < 0.98)) for t in tasks for _ in range(4)]
    b += [episode("only-in-b", True)] * 4
    run_a, run_b = write_run(tmp_path / "a", a, 4), write_run(tmp_path / "b", b, 4)
    comparison = compare_runs([load_run(run_a), load_run(run_b)])
    assert comparison["shared_tasks"] == 30
    assert any("not in every run" in w for w in comparison["warnings"])
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
