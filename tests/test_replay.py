"""The replay UI: its index, filters and export, driven keys, live follow, bad files, snapshots."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rounds.records import Episode
from rounds.tui.app import CompareScreen, EpisodeListScreen, EpisodeScreen, HelpScreen, ReplayApp
from rounds.tui.export import episode_markdown
from rounds.tui.filters import FilterError, parse_filter
from rounds.tui.index import EpisodeIndex, EpisodeRow, open_index

DATA = Path(__file__).parent / "data"
FIXTURE_IGNORE = shutil.ignore_patterns(".*.index.json", "exports")


@pytest.fixture()
def eval_run(tmp_path: Path) -> Path:
    return Path(shutil.copytree(DATA / "eval_run", tmp_path / "eval_run", ignore=FIXTURE_IGNORE))


@pytest.fixture()
def train_run(tmp_path: Path) -> Path:
    return Path(shutil.copytree(DATA / "train_run", tmp_path / "train_run", ignore=FIXTURE_IGNORE))


# ------------------------------------------------------------------ index


def test_index_is_built_then_reused_from_its_cache(eval_run: Path) -> None:
    path = eval_run / "episodes.jsonl"
    index = open_index(path)
    assert index.rows == []
    assert len(index.update()) == 8
    index.save_cache()
    again = EpisodeIndex(path)
    assert again.load_cache() and len(again.rows) == 8 and again.end == path.stat().st_size
    row = again.rows[0]
    assert again.read(row).id == row.id
    assert {r.env_id for r in again.rows} == {"rounds/DiagGym-v0", "rounds/Household-v0"}


def test_index_follows_appends_and_waits_for_torn_lines(eval_run: Path) -> None:
    path = eval_run / "episodes.jsonl"
    index = open_index(path)
    index.update()
    line = path.read_bytes().splitlines(keepends=True)[0]
    with path.open("ab") as handle:
        handle.write(line[:40])  # a writer is mid-line
    assert index.update() == [] and index.torn_tail()
    with path.open("ab") as handle:
        handle.write(line[40:])
    assert len(index.update()) == 1 and not index.torn_tail()
    assert len(index.rows) == 9


def test_index_survives_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "episodes.jsonl"
    good = json.dumps(
        {
            "env_id": "x",
            "task_id": "t",
            "turns": [{"index": 0, "observation": "o", "action": "a"}],
            "outcome": 1.0,
            "future": 1,
        }
    )
    path.write_bytes(
        good.encode() + b"\n" + b"\xff\xfe broken\n" + b"[1]\n" + good.encode() + b"\n"
    )
    index = open_index(path)
    rows = index.update()
    assert len(rows) == 2 and rows[0].success and rows[0].turns == 1
    assert any("not UTF-8" in w for w in index.warnings) and any(
        "not an episode" in w for w in index.warnings
    )
    assert index.read(rows[1]).model_extra == {"future": 1}
    path.write_bytes(good.encode() + b"\n")  # replaced by a shorter file: indexing restarts
    assert len(index.update()) == 1 and len(index.rows) == 1


def test_search_finds_text_in_observations_and_actions(eval_run: Path) -> None:
    index = open_index(eval_run / "episodes.jsonl")
    index.update()
    found = list(index.search("MICROWAVE", index.rows))
    assert [r.env_id for r in found] == ["rounds/Household-v0"]
    assert list(index.search("no such text anywhere", index.rows)) == []
    assert list(index.search('quote " and\nnewline', index.rows)) == []


# ------------------------------------------------------------------ filters and export


def row(**fields: object) -> EpisodeRow:
    return EpisodeRow(offset=0, length=0, line=1, **fields)  # type: ignore[arg-type]


def test_filters() -> None:
    a = row(env_id="rounds/DiagGym-v0", outcome=1.1, turns=3, success=True, seed=4)
    b = row(env_id="rounds/Household-v0", outcome=0.0, turns=9, success=False, seed=None)
    assert parse_filter("outcome>0")(a) and not parse_filter("outcome>0")(b)
    assert parse_filter("env~diag turns<=3")(a) and not parse_filter("env~diag turns<=3")(b)
    assert (
        parse_filter("success=false")(b)
        and parse_filter("seed=4")(a)
        and not parse_filter("seed=4")(b)
    )
    assert parse_filter("")(a) and parse_filter("  ")(b)
    for bad, needle in (
        ("outcome>>1", "takes a number"),
        ("colour=red", "cannot read"),
        ("turns>many", "whole number"),
        ("success=maybe", "true or false"),
    ):
        with pytest.raises(FilterError, match=needle):
            parse_filter(bad)


def test_markdown_export_has_every_turn(eval_run: Path) -> None:
    index = open_index(eval_run / "episodes.jsonl")
    index.update()
    episode = index.read(next(r for r in index.rows if r.turns > 3))
    text = episode_markdown(episode)
    assert text.startswith(f"# Episode {episode.id}")
    assert text.count("## Turn ") == episode.num_turns
    assert episode.turns[-1].action in text and "reward +1" in text
    tool = Episode(
        env_id="x",
        turns=[
            {
                "index": 0,
                "observation": "```fence```",
                "action": '{"name": "diagnose"}',
                "advantage": 0.5,
            }
        ],
    )
    rendered = episode_markdown(tool)
    assert (
        "```json" in rendered
        and "````\n```fence```\n````" in rendered
        and "advantage +0.500" in rendered
    )


# ------------------------------------------------------------------ the app


async def test_keys_drive_the_app(eval_run: Path, train_run: Path) -> None:
    app = ReplayApp(eval_run)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(0.3)
        screen = app.screen
        assert isinstance(screen, EpisodeListScreen)
        table = screen.query_one("#episodes")
        assert table.row_count == 8
        await pilot.press("j", "enter")
        assert isinstance(app.screen, EpisodeScreen) and app.screen.position == 1
        episode = app.screen.episode
        await pilot.press("j")
        assert app.screen.turn == min(1, episode.num_turns - 1)
        await pilot.press("k", "n")
        assert app.screen.position == 2 and app.screen.turn == 0
        await pilot.press("p")
        assert app.screen.position == 1
        await pilot.press("e")
        await pilot.pause(0.1)
        assert (
            (eval_run / "exports" / f"{episode.id}.md")
            .read_text()
            .startswith(f"# Episode {episode.id}")
        )
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape", "escape")
        assert isinstance(app.screen, EpisodeListScreen)
        await pilot.press("f", *"env~House", "enter")
        await pilot.pause(0.1)
        assert table.row_count == 2
        await pilot.press("escape", "slash", *"microwave", "enter")
        await pilot.pause(0.3)
        assert table.row_count == 1  # only the heating task mentions a microwave
        await pilot.press("escape", "s", "s", "s", "s")  # sort by reward
        assert app.screen.sort_column == "reward"
        order = [r.total_reward for r in app.screen.ordered_rows()]
        assert order == sorted(order)
        await pilot.press("r")
        assert [r.total_reward for r in app.screen.ordered_rows()] == sorted(order, reverse=True)
        await pilot.press("q")
    compare = ReplayApp(train_run)
    async with compare.run_test(size=(120, 40)) as pilot:
        await pilot.pause(0.3)
        await pilot.press("enter", "c")
        assert isinstance(compare.screen, CompareScreen)
        left, right = compare.screen.left, compare.screen.right
        assert left.task_id == right.task_id and left.id != right.id
        assert right.total_reward == max(e.total_reward for e in (right, left))
        await pilot.press("j")
        assert compare.screen.turn == 1
        await pilot.press("escape")
        assert isinstance(compare.screen, EpisodeScreen)


async def test_follow_mode_shows_episodes_as_they_are_written(eval_run: Path) -> None:
    path = eval_run / "episodes.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:2]))
    app = ReplayApp(eval_run, follow=True, refresh_s=0.1)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(0.3)
        table = app.screen.query_one("#episodes")
        assert table.row_count == 2
        with path.open("ab") as handle:
            handle.write(b"".join(lines[2:5]))
        deadline = time.time() + 30
        while table.row_count < 5 and time.time() < deadline:
            await pilot.pause(0.1)
        assert table.row_count == 5


async def test_bad_files_warn_and_never_crash(tmp_path: Path) -> None:
    run = tmp_path / "bad"
    run.mkdir()
    good = (DATA / "eval_run" / "episodes.jsonl").read_bytes().splitlines(keepends=True)
    (run / "episodes.jsonl").write_bytes(good[0] + b"\xff\xfe not json\n" + good[1] + good[2][:50])
    (run / "summary.json").write_text("{torn")
    (run / "config.yaml").write_text("kind: [unclosed")
    app = ReplayApp(run)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(0.3)
        assert app.screen.query_one("#episodes").row_count == 2
        messages = " ".join(n.message for n in app._notifications)
        assert "not UTF-8" in messages and "incomplete" in messages
        await pilot.press("enter")
        assert isinstance(app.screen, EpisodeScreen)


def test_cli_replay_errors(tmp_path: Path) -> None:
    from rounds.cli import app

    result = CliRunner().invoke(app, ["replay", str(tmp_path / "missing")], terminal_width=300)
    assert result.exit_code == 2 and "not a directory" in result.output
    result = CliRunner().invoke(app, ["replay", str(tmp_path)], terminal_width=300)
    assert result.exit_code == 2 and "neither episodes.jsonl nor metrics.jsonl" in result.output


# ------------------------------------------------------------------ snapshots


def test_snapshot_episode_list(snap_compare, eval_run: Path) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(ReplayApp(eval_run), terminal_size=(120, 36), run_before=settle)


def test_snapshot_training_run(snap_compare, train_run: Path) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(ReplayApp(train_run), terminal_size=(120, 36), run_before=settle)


def test_snapshot_episode_view(snap_compare, eval_run: Path) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(
        ReplayApp(eval_run),
        terminal_size=(120, 40),
        press=["j", "j", "enter", "j"],
        run_before=settle,
    )


def test_snapshot_compare(snap_compare, train_run: Path) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(
        ReplayApp(train_run), terminal_size=(140, 40), press=["enter", "c"], run_before=settle
    )


async def settle(pilot) -> None:  # type: ignore[no-untyped-def]
    await pilot.pause(0.4)


def test_rounds_replay_runs_in_a_terminal_and_quits_on_q(eval_run: Path) -> None:
    """The real command in a pseudo-terminal: it draws the list and exits on 'q'."""
    import contextlib
    import os
    import pty
    import select
    import subprocess
    import sys

    primary, secondary = pty.openpty()
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "120", "LINES": "40"}
    process = subprocess.Popen(
        [sys.executable, "-c", "from rounds.cli import main; main()", "replay", str(eval_run)],
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
        env=env,
        close_fds=True,
    )
    os.close(secondary)
    output = b""
    deadline = time.time() + 120
    try:
        while b"rounds replay" not in output and time.time() < deadline:
            ready, _, _ = select.select([primary], [], [], 0.2)
            if ready:
                try:
                    output += os.read(primary, 65536)
                except OSError:
                    break
        assert b"rounds replay" in output, output[-2000:]
        quit_by = time.time() + 30
        while process.poll() is None and time.time() < quit_by:
            os.write(primary, b"q")  # a key sent before the app has mounted is dropped: resend
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=0.5)
        assert process.wait(timeout=5) == 0
    finally:
        if process.poll() is None:
            process.kill()
        os.close(primary)
