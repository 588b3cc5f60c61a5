from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from rounds.records import Episode, Turn, jsonable
from rounds.storage import (
    JsonlLine,
    JsonlWriter,
    RunDir,
    RunFileWarning,
    atomic_write_json,
    decode_line,
    iter_jsonl,
    read_episodes,
    scan_jsonl,
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
    with pytest.warns(RunFileWarning, match="last line was torn"), JsonlWriter(path) as writer:
        writer.write({"step": 3})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the file is whole again: reading it warns of nothing
        rows = list(iter_jsonl(path))
    assert rows == [{"step": 1}, {"step": 3}]


def test_resuming_moves_a_torn_last_line_to_a_torn_file(tmp_path: Path) -> None:
    """A resumed writer cuts the torn fragment off (appending it to episodes.jsonl.torn)."""
    run = RunDir(tmp_path / "run")
    with run.episode_writer() as writer:
        writer.write(make_episode(0))
        writer.write(make_episode(1))
    whole = run.episodes_path.read_bytes()
    second = whole.splitlines(keepends=True)[1]
    run.episodes_path.write_bytes(whole[: len(whole) - 30])  # killed while writing record 1
    with pytest.warns(RunFileWarning, match=r"moved to .*episodes\.jsonl\.torn"):
        writer = run.episode_writer()
    torn = run.path / "episodes.jsonl.torn"
    assert torn.read_bytes() == second[:-30] + b"\n"
    assert run.episodes_path.read_bytes() == whole.splitlines(keepends=True)[0]
    with writer:
        writer.write(make_episode(2))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert [e.task_id for e in run.episodes()] == ["pick-test-0000", "pick-test-0002"]
    # A second interruption appends its fragment; the first one is kept.
    with run.episodes_path.open("ab") as handle:
        handle.write(b'{"env_id": "rounds/Hou')
    with pytest.warns(RunFileWarning, match="torn"):
        run.episode_writer().close()
    assert torn.read_bytes() == second[:-30] + b"\n" + b'{"env_id": "rounds/Hou\n'
    assert run.episodes_path.read_bytes().endswith(b"\n")
    run.clear()  # a run that starts over drops the old run's fragments too
    assert not torn.exists() and not run.episodes_path.exists()


def test_resuming_keeps_a_whole_last_record_without_its_newline(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1}\n{"step": 2}', encoding="utf-8")  # whole, newline missing
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with JsonlWriter(path) as writer:
            writer.write({"step": 3})
    assert list(iter_jsonl(path)) == [{"step": 1}, {"step": 2}, {"step": 3}]
    assert not path.with_name("metrics.jsonl.torn").exists()


def test_a_torn_file_without_any_newline_is_emptied(tmp_path: Path) -> None:
    path = tmp_path / "episodes.jsonl"
    path.write_bytes(b'{"env_id": "x", "tu')
    with pytest.warns(RunFileWarning, match="torn"), JsonlWriter(path) as writer:
        writer.write({"a": 1})
    assert path.read_bytes() == b'{"a": 1}\n'
    assert path.with_name("episodes.jsonl.torn").read_bytes() == b'{"env_id": "x", "tu\n'


def test_decode_line_reports_problems_as_data() -> None:
    good = make_episode(0).model_dump_json().encode() + b"\n"
    line = decode_line(good, 7, Episode, offset=100)
    assert line.value is not None and line.value.task_id == "pick-test-0000"
    assert (line.number, line.offset, line.length, line.problems) == (7, 100, len(good), ())
    cases = {
        b'{"id":"x","turns":"not a list"}\n': "not an episode record (env_id: Field required; "
        "turns: Input should be a valid array)",
        b"[1, 2]\n": "a JSON list is not an episode record",
        b"{broken\n": "not JSON",
        b'{"env_id": "x", "tu': "torn last line",
    }
    for raw, reason in cases.items():
        line = decode_line(raw, 3, Episode)
        assert line.value is None, raw
        assert [p.line for p in line.problems] == [3] and reason in line.problems[0].reason, (
            line.problems
        )
        assert str(line.problems[0]).startswith("line 3: skipped")
    mangled = decode_line(good.replace(b'"obs"', b'"o\xffs"'), 2, Episode)
    assert mangled.value is not None and mangled.value.turns[0].observation == "o\ufffds"
    assert [str(p) for p in mangled.problems] == ["line 2: bytes that are not UTF-8 were replaced"]
    assert decode_line(b"  \n", 5, Episode) == JsonlLine(5, 0, 3, None, ())
    assert decode_line(b'{"a": [1]}\n', 1).value == {"a": [1]}
    assert "a JSON int is not a record" in decode_line(b"3\n", 1).problems[0].reason


def test_scan_jsonl_numbers_lines_and_waits_for_a_torn_tail(tmp_path: Path) -> None:
    path = tmp_path / "episodes.jsonl"
    good = make_episode(0).model_dump_json().encode() + b"\n"
    path.write_bytes(good + b"\n" + b'{"id":"x","turns":"not a list"}\n' + good + good[:20])
    lines = list(scan_jsonl(path, model=Episode))
    assert [line.number for line in lines] == [1, 2, 3, 4, 5]
    assert [line.value is not None for line in lines] == [True, False, False, True, False]
    assert [line.offset for line in lines][:2] == [0, len(good)]
    waiting = list(scan_jsonl(path, model=Episode, complete_only=True))
    assert len(waiting) == 4  # the torn tail is left for a writer still writing it
    resumed = list(scan_jsonl(path, model=Episode, offset=lines[3].offset, first_line=4))
    assert [line.number for line in resumed] == [4, 5] and resumed[0].value is not None


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
    assert "line 2: " not in messages  # warnings name the file and line as PATH:LINE
    assert f"{path}:2: bytes that are not UTF-8" in messages
    assert f"{path}:3: skipped, a JSON list is not an episode record" in messages
    assert f"{path}:4: skipped, not an episode record (env_id:" in messages


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
