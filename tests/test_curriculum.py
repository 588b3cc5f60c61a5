"""Pass-rate curriculum: saturated tasks are skipped or down-weighted, with counts in the metrics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import toy_envs  # noqa: F401  (registers toys/Vowel-v0)
from conftest import TOY_TRAINING

from rounds.records import Episode
from rounds.trainers import GRPOConfig, GRPOTrainer
from rounds.trainers.curriculum import Curriculum, PassRateCurriculum
from rounds.trainers.rollout import step_episodes


def test_saturated_tasks_are_skipped_or_down_weighted() -> None:
    tasks = ["easy", "hard", "mixed", "new"]
    c = PassRateCurriculum(Curriculum(window=4, min_samples=4))
    c.update("easy", [1, 1, 1, 1])
    c.update("hard", [0, 0, 0, 0])
    c.update("mixed", [1, 0, 0, 1])
    c.update("new", [1, 1])  # too few rollouts to judge
    assert c.weights(tasks).tolist() == pytest.approx([0, 0, 0.5, 0.5])
    assert c.metrics(tasks) == {
        "curriculum/tasks_seen": 4.0,
        "curriculum/all_solved": 1.0,
        "curriculum/none_solved": 1.0,
        "curriculum/sampled_fraction": 0.5,
    }
    down = PassRateCurriculum(Curriculum(window=4, min_samples=4, saturated_weight=0.5))
    down.history = c.history
    assert down.weights(tasks).tolist() == pytest.approx([1 / 6, 1 / 6, 1 / 3, 1 / 3])
    # The window forgets: a task that starts failing is sampled again.
    c.update("easy", [0])
    assert not c.saturated("easy")


def test_every_task_saturated_falls_back_to_uniform() -> None:
    c = PassRateCurriculum(Curriculum(window=2, min_samples=1))
    c.update("a", [1])
    c.update("b", [0])
    assert c.weights(["a", "b"]).tolist() == [0.5, 0.5]


def test_replay_rebuilds_the_history_from_episodes() -> None:
    c = PassRateCurriculum(Curriculum(window=4, min_samples=2))
    c.replay([Episode(env_id="x", task_id="t", metrics={"success": 1.0}) for _ in range(2)])
    assert c.saturated("t")


def test_step_episodes_never_draw_a_skipped_task() -> None:
    config = GRPOConfig(**{**TOY_TRAINING, "env_id": "toys/Vowel-v0", "tasks_per_step": 3})
    tasks = [f"t{i}" for i in range(10)]
    weights = np.array([0.0] * 5 + [0.2] * 5)
    for step in range(20):
        specs, _ = step_episodes(config, tasks, step, weights=weights)
        assert {s.task_id for s in specs} <= set(tasks[5:])
    # Without weights, the draw is the one it always was (resumed runs replay it).
    assert step_episodes(config, tasks, 3)[0] == step_episodes(config, tasks, 3, weights=None)[0]


def test_trainer_reports_curriculum_counts(tmp_path: Path) -> None:
    config = GRPOConfig(
        **{
            **TOY_TRAINING,
            "env_id": "toys/Vowel-v0",
            "steps": 2,
            "tasks_per_step": 2,
            "group_size": 2,
            "progress": False,
            "output_dir": str(tmp_path / "run"),
            "curriculum": Curriculum(window=2, min_samples=2),
        }
    )
    rows: list[dict[str, float]] = []
    GRPOTrainer(config=config, on_step=rows.append).train()
    assert rows[0]["curriculum/tasks_seen"] == 2.0
    assert rows[1]["curriculum/tasks_seen"] >= 2.0
    for row in rows:
        assert (
            row["curriculum/all_solved"] + row["curriculum/none_solved"]
            <= row["curriculum/tasks_seen"]
        )
