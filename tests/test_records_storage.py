from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from rounds.records import Episode, Turn, jsonable
from rounds.storage import (
    JsonlWriter,
    RunDir,
    RunFileWarning,
    atomic_write_json,
    iter_jsonl,
    read_episodes,
)


def make_episode(i: int = 0) -> Episode:
    return Episode(
        env_id="rounds/Household-v0",
        task_id=f"pick-test-{i:04d}",
        seed=i,
        agent="expert",
        turns=[
            Turn(
                index=0,
                observation="obs",
                action="look",
                reward=0.5,
                reward_components={"outcome": 0.5},
            ),
        ],
        outcome=0.5,
        metrics={"success": 1.0},
        total_reward=0.5,
    )


def test_episode_round_trips_through_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "episodes.jsonl"
    with JsonlWriter(path) as writer:
        for i in range(3):
            writer.write(make_episode(i))
    episodes = list(read_episodes(path))
    assert [e.task_id for e in episodes] == ["pick-test-0000", "pick-test-0001", "pick-test-0002"]
    assert episodes[1] == make_episode(1).model_copy(
        update={"id": episodes[1].id, "created_at": episodes[1].created_at}
    )
    assert episodes[0].turns[0].reward_components == {"outcome": 0.5}


def test_reader_skips_torn_last_line_with_warning(tmp_path: Path) -> None:
    path = tmp_path / "episodes.jsonl"
    with JsonlWriter(path) as writer:
        writer.write(make_episode(0))
        writer.write(make_episode(1))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 40])  # a writer killed mid-line
    with pytest.warns(RunFileWarning, match="torn last line"):
        episodes = list(read_episodes(path))
    assert len(episodes) == 1


def test_writer_after_torn_line_does_not_glue_records(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1}\n{"step": 2, "lo', encoding="utf-8")
    with JsonlWriter(path) as writer:
        writer.write({"step": 3})
    with pytest.warns(RunFileWarning):
        rows = list(iter_jsonl(path))
    assert rows == [{"step": 1}, {"step": 3}]


def test_reader_survives_non_utf8_unknown_fields_and_garbage(tmp_path: Path) -> None:
    path = tmp_path / "episodes.jsonl"
    good = make_episode(0).model_dump(mode="json")
    good["a_future_field"] = {"x": 1}
    with path.open("wb") as handle:
        handle.write(json.dumps(good).encode() + b"\n")
        handle.write(b"\xff\xfe not json\n")
        handle.write(b"[1, 2]\n")
        handle.write(b'{"env_id": 3}\n')
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        episodes = list(read_episodes(path))
    assert len(episodes) == 1
    assert episodes[0].model_extra == {"a_future_field": {"x": 1}}
    messages = " ".join(str(w.message) for w in caught)
    assert "not UTF-8" in messages and "not a record" in messages and "not an episode" in messages


def test_records_scrub_surrogates_and_numpy_values(tmp_path: Path) -> None:
    turn = Turn(
        index=0,
        observation="ok",
        action="bad \ud800 text",
        info={"n": np.int64(3), "x": np.float32(0.5), "nan": float("nan")},
    )
    assert turn.action == "bad ? text"
    assert turn.info == {"n": 3, "x": 0.5, "nan": None}
    episode = make_episode().model_copy(update={"turns": [turn]})
    with JsonlWriter(tmp_path / "e.jsonl") as writer:
        writer.write(episode)
    assert next(read_episodes(tmp_path / "e.jsonl")).turns[0].action == "bad ? text"


def test_jsonable_handles_nested_and_unknown_objects() -> None:
    assert jsonable({"a": (1, 2), "b": {3}, 4: np.array([1.5, 2.5]), "o": object}) == {
        "a": [1, 2],
        "b": [3],
        "4": [1.5, 2.5],
        "o": "<class 'object'>",
    }


def test_atomic_write_replaces_whole_file(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "summary.json"
    atomic_write_json(path, {"a": 1})
    atomic_write_json(path, {"b": 2})
    assert json.loads(path.read_text()) == {"b": 2}
    assert [p.name for p in path.parent.iterdir()] == ["summary.json"]


def test_run_dir_files(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    assert list(run.episodes()) == [] and list(run.metrics()) == [] and run.read_summary() == {}
    run.write_config({"env_id": "x", "n": 2})
    assert run.read_config() == {"env_id": "x", "n": 2}
    with run.metrics_writer() as writer:
        writer.write({"step": 0, "loss": 1.0})
    assert list(run.metrics()) == [{"step": 0, "loss": 1.0}]
    run.summary_path.write_text("{broken")
    with pytest.warns(RunFileWarning):
        assert run.read_summary() == {}


def test_closed_writer_refuses_to_write(tmp_path: Path) -> None:
    writer = JsonlWriter(tmp_path / "x.jsonl")
    writer.close()
    with pytest.raises(ValueError, match="closed"):
        writer.write({"a": 1})
