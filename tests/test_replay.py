"""The replay UI: its index, filters and export, driven keys, live follow, bad files, snapshots."""

from __future__ import annotations

import io
import json
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import DataTable, Input, Label, Static
from typer.testing import CliRunner

from rounds.records import Episode
from rounds.tui import episode_list
from rounds.tui.app import CompareScreen, EpisodeListScreen, EpisodeScreen, HelpScreen, ReplayApp
from rounds.tui.episode_list import PAGE, StatusLine
from rounds.tui.export import episode_markdown
from rounds.tui.filters import FilterError, parse_filter
from rounds.tui.index import EpisodeIndex, EpisodeRow, open_index

DATA = Path(__file__).parent / "data"
FIXTURE_IGNORE = shutil.ignore_patterns(".*.index.json", "exports")
#: Episodes of the generated large run, and the line that holds a record of the wrong shape.
BIG = 1200
BAD_LINE = 501


def write_big_run(path: Path, episodes: int = BIG) -> list[str]:
    """A run of ``episodes`` two-turn episodes (and one invalid record on line ``BAD_LINE``)
    whose env declares a metric ``score`` and a series ``belief``; returns the episode ids
    in list order. Episode ``i``'s observation holds the word ``marker-{i:05d}``."""
    path.mkdir(parents=True)
    lines: list[str] = []
    ids: list[str] = []
    for i in range(episodes):
        if len(lines) + 1 == BAD_LINE:
            lines.append('{"id": "x", "turns": "not a list"}')
        episode = Episode(
            id=f"ep{i:05d}",
            env_id="rounds/Toy-v0",
            task_id=f"toy-test-{i:05d}",
            seed=i,
            agent="scripted",
            turns=[
                {
                    "index": t,
                    "observation": f"Room {t} of marker-{i:05d}.",
                    "action": f"go {t}",
                    "reward": 0.25 * t,
                    "info": {"belief": 1.0 - 0.5 * t, "steps_left": 2 - t},
                }
                for t in range(2)
            ],
            outcome=float(i % 2),
            metrics={"success": float(i % 2), "score": (i % 10) / 10},
            total_reward=float(i % 2) + 0.25,
            meta={"replay_metrics": ["score", "absent_metric"], "replay_series": ["belief"]},
        )
        ids.append(episode.id)
        lines.append(episode.model_dump_json())
    (path / "episodes.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (path / "config.yaml").write_text("kind: eval\nenv_id: rounds/Toy-v0\nagent: scripted\n")
    return ids


@pytest.fixture(scope="module")
def big_run_source(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    path = tmp_path_factory.mktemp("big") / "big_run"
    return path, write_big_run(path)


@pytest.fixture()
def big_run(tmp_path: Path, big_run_source: tuple[Path, list[str]]) -> tuple[Path, list[str]]:
    source, ids = big_run_source
    return Path(shutil.copytree(source, tmp_path / "big_run", ignore=FIXTURE_IGNORE)), ids


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
    episode = again.read(row)
    assert episode is not None and episode.id == row.id
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
    second = index.read(rows[1])
    assert second is not None and second.model_extra == {"future": 1}
    path.write_bytes(good.encode() + b"\n")  # replaced by a shorter file: indexing restarts
    assert len(index.update()) == 1 and len(index.rows) == 1


def test_index_and_readers_accept_the_same_lines(tmp_path: Path) -> None:
    """One decoder: the index lists exactly the episodes ``read_episodes`` yields, and a line
    that is JSON but not an episode is in neither (it used to be indexed, then crash on open)."""
    from rounds.storage import RunFileWarning, read_episodes

    run = tmp_path / "run"
    write_big_run(run, episodes=BAD_LINE + 20)
    path = run / "episodes.jsonl"
    with path.open("ab") as handle:
        handle.write(b'{"env_id": "x", "turns": [{"index": 0}]}\n[1, 2]\n{"env_id": ')
    index = open_index(path)
    index.update()
    with pytest.warns(RunFileWarning) as caught:
        episodes = list(read_episodes(path))
    assert [r.id for r in index.rows] == [e.id for e in episodes]
    assert len(episodes) == BAD_LINE + 20
    last = BAD_LINE + 21
    assert index.warnings == [
        f"line {BAD_LINE}: skipped, not an episode record (env_id: Field required; "
        "turns: Input should be a valid array)",
        f"line {last + 1}: skipped, not an episode record (turns.0.observation: Field "
        "required; turns.0.action: Field required)",
        f"line {last + 2}: skipped, a JSON list is not an episode record",
    ]
    assert [str(w.message).split(": ", 1)[1] for w in caught][:3] == [
        w.split(": ", 1)[1] for w in index.warnings
    ]
    assert index.torn_tail()  # the torn tail waits for its writer
    path.write_bytes(path.read_bytes().replace(b'"id":"ep00003"', b'"id":123456789', 1))
    assert index.read(index.rows[3]) is None  # the file changed under the index: no crash
    assert index.warnings[-1].startswith("line 4: skipped, not an episode record (id:")


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
    assert episode is not None
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
        table = screen.query_one("#episodes", DataTable)
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
        order = [r.total_reward for r in app.screen.view]
        assert order == sorted(order)
        await pilot.press("r")
        assert [r.total_reward for r in app.screen.view] == sorted(order, reverse=True)
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
        table = app.screen.query_one("#episodes", DataTable)
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
        assert app.screen.query_one("#episodes", DataTable).row_count == 2
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


# ------------------------------------------------------------------ a large run, driven by keys


async def indexed(app: ReplayApp, pilot: Any) -> EpisodeListScreen:
    """The list screen once the background indexing has read the whole file."""
    deadline = time.time() + 60
    while True:
        await pilot.pause(0.05)
        screen = app.screen
        if isinstance(screen, EpisodeListScreen) and not screen.indexing:
            return screen
        assert time.time() < deadline, "indexing did not finish"


def highlighted_task(screen: EpisodeListScreen) -> str:
    """The task cell of the row the table highlights (what the user sees)."""
    table = screen.query_one("#episodes", DataTable)
    return str(table.get_row_at(table.cursor_row)[2])


def task(i: int) -> str:
    return f"toy-test-{i:05d}"


async def go_to(pilot: Any, screen: EpisodeListScreen, position: int) -> None:
    """Move the list's cursor to ``position`` with keys, as a user would (pages, then rows)."""
    await pilot.press("g")
    while screen.cursor < position:
        previous = screen.cursor
        await pilot.press("pagedown")
        assert screen.cursor > previous
    await pilot.press(*["k"] * (screen.cursor - position))
    assert screen.cursor == position
    assert highlighted_task(screen) == screen.view[position].task_id


@pytest.mark.slow
async def test_every_episode_of_a_large_run_is_reachable_by_keys(
    big_run: tuple[Path, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Row by row down the whole list and back up, the highlighted row is the list position.
    (The window used to stop at its 200th row and send the cursor back to row 99.)"""
    monkeypatch.setattr(episode_list, "PAGE", 20)  # the window moves every few keys
    run, _ = big_run
    app = ReplayApp(run)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await indexed(app, pilot)
        assert len(screen.view) == BIG
        for i in range(1, 70):  # real key presses across several moves of the window
            await pilot.press("j")
            assert screen.cursor == i and highlighted_task(screen) == task(i), i
        for i in range(70, BIG):  # the same action, without a frame per row
            screen.action_move(1)
            assert screen.cursor == i and highlighted_task(screen) == task(i), i
            if i % 97 == 0:
                await pilot.pause()  # the table's queued messages must not move the cursor
                assert screen.cursor == i and highlighted_task(screen) == task(i), i
        await pilot.press("j")  # at the bottom: stays
        assert screen.cursor == BIG - 1 and highlighted_task(screen) == task(BIG - 1)
        for i in range(BIG - 2, BIG - 60, -1):  # back up across window edges
            await pilot.press("k")
            assert highlighted_task(screen) == task(i), i
        await pilot.press("pagedown")
        assert screen.cursor > BIG - 60
        assert highlighted_task(screen) == task(screen.cursor)


async def test_g_and_G_jump_to_the_ends_of_the_whole_list(big_run: tuple[Path, list[str]]) -> None:
    run, _ = big_run
    app = ReplayApp(run)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await indexed(app, pilot)
        await pilot.press("G")
        assert screen.cursor == BIG - 1 and highlighted_task(screen) == task(BIG - 1)
        await pilot.press("k", "k")
        assert highlighted_task(screen) == task(BIG - 3)
        await pilot.press("g")
        assert screen.cursor == 0 and highlighted_task(screen) == task(0)
        await pilot.press("end")
        assert highlighted_task(screen) == task(BIG - 1)
        await pilot.press("home", "pagedown", "pagedown")
        assert screen.cursor > 0 and highlighted_task(screen) == task(screen.cursor)


@pytest.mark.slow
async def test_open_opens_the_episode_at_the_list_position(big_run: tuple[Path, list[str]]) -> None:
    run, ids = big_run
    app = ReplayApp(run)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await indexed(app, pilot)
        await go_to(pilot, screen, 149)
        await pilot.press("enter")
        assert isinstance(app.screen, EpisodeScreen)
        assert app.screen.episode.id == ids[149] and app.screen.position == 149
        await pilot.press("n")
        assert app.screen.episode.id == ids[150]
        await pilot.press("escape", "G", *["k"] * 5, "enter")
        assert isinstance(app.screen, EpisodeScreen) and app.screen.episode.id == ids[-6]
        await pilot.press("escape", "g", *["pagedown"] * 20)
        assert screen.cursor > PAGE  # past the first window
        at = screen.cursor
        await pilot.press("enter")
        assert isinstance(app.screen, EpisodeScreen) and app.screen.episode.id == ids[at]


@pytest.mark.slow
async def test_search_and_filter_cover_the_whole_list(big_run: tuple[Path, list[str]]) -> None:
    run, ids = big_run
    app = ReplayApp(run)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await indexed(app, pilot)
        await ask(pilot, "slash", "MARKER-01100")
        await wait_for(pilot, lambda: not screen._search_busy and len(screen.view) == 1)
        await pilot.press("enter")
        assert isinstance(app.screen, EpisodeScreen) and app.screen.episode.id == ids[1100]
        await pilot.press("escape", "escape")
        assert len(screen.view) == BIG and highlighted_task(screen) == task(1100)  # kept
        # The search looks in observations and actions, as its help says, not in task ids.
        await pilot.press("g")
        await ask(pilot, "slash", task(42))
        await wait_for(pilot, lambda: not screen._search_busy and screen.searched == BIG)
        assert screen.view == []
        await pilot.press("escape")
        await ask(pilot, "slash", "go 1")  # every episode's second action
        await wait_for(pilot, lambda: not screen._search_busy and screen.searched == BIG)
        assert len(screen.view) == BIG
        await pilot.press("escape")
        await ask(pilot, "f", "seed>=1000")
        await pilot.pause(0.05)
        assert len(screen.view) == BIG - 1000 and highlighted_task(screen) == task(1000)
        await pilot.press("G")
        assert highlighted_task(screen) == task(BIG - 1)
        # A declared metric is a filter field.
        await pilot.press("escape")
        await ask(pilot, "f", "score>=0.9 seed<100")
        await pilot.pause(0.05)
        assert [r.seed for r in screen.view] == list(range(9, 100, 10))
        await pilot.press("escape")
        await ask(pilot, "f", "seed>=600")
        await ask(pilot, "slash", "marker-0070")
        await wait_for(pilot, lambda: not screen._search_busy and screen.searched == BIG)
        assert [r.task_id for r in screen.view] == [task(i) for i in range(700, 710)]


async def ask(pilot: Any, key: str, text: str) -> None:
    """Open a prompt with ``key`` (search or filter), enter ``text`` and submit it."""
    await pilot.press(key)
    pilot.app.screen.query_one(Input).value = text
    await pilot.press("enter")


async def wait_for(pilot: Any, condition: Any, timeout: float = 30) -> None:
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, "condition not reached"
        await pilot.pause(0.05)


async def test_a_record_of_the_wrong_shape_is_skipped_with_a_warning(
    big_run: tuple[Path, list[str]],
) -> None:
    run, ids = big_run
    app = ReplayApp(run)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await indexed(app, pilot)
        assert len(screen.index.rows) == BIG and BAD_LINE not in {r.line for r in screen.index.rows}
        messages = " ".join(n.message for n in app._notifications)
        assert (
            f"line {BAD_LINE}: skipped, not an episode record (env_id: Field required" in messages
        )
        assert "1 warnings" in screen.query_one("#status", StatusLine).text
        screen.action_move(BAD_LINE - 1)  # to the episode after the bad line
        await pilot.press("enter")
        assert isinstance(app.screen, EpisodeScreen) and app.screen.episode.id == ids[BAD_LINE - 1]


async def test_the_list_and_episode_show_what_the_env_declares(
    big_run: tuple[Path, list[str]], eval_run: Path
) -> None:
    run, _ = big_run
    app = ReplayApp(run)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await indexed(app, pilot)
        labels = [str(c.label) for c in screen.query_one("#episodes", DataTable).columns.values()]
        assert labels[-1] == "score" and "absent_metric" not in labels  # declared, never present
        await pilot.press(*["s"] * len(episode_list.SORTABLE))  # the declared metric sorts too
        assert screen.sort_column == "metric:score"
        assert "sort: score" in screen.query_one("#status", StatusLine).text
        scores = [r.metrics["score"] for r in screen.view]
        assert scores == sorted(scores) and scores[0] == 0.0 and scores[-1] == 0.9
        await pilot.press("g")
        await pilot.press("enter")
        lines = [str(label.render()) for label in app.screen.query("#lines Label").results(Label)]
        assert lines == ["reward / turn", "belief"]
    old = ReplayApp(eval_run)  # written before envs declared anything: show what is there
    async with old.run_test(size=(120, 40)) as pilot:
        screen = await indexed(old, pilot)
        summary = summary_text(screen)
        assert "exam_recall" in summary and "subgoal_fraction" in summary
        await pilot.press("j", "j", "enter")
        lines = [str(label.render()) for label in old.screen.query("#lines Label").results(Label)]
        assert lines == ["reward / turn", "posterior entropy"]


def summary_text(screen: EpisodeListScreen) -> str:
    """The summary box as the user reads it."""
    from rich.console import Console

    console = Console(width=120, record=True, file=io.StringIO())
    console.print(screen.query_one("#summary", Static).content)
    return console.export_text()


def test_the_core_replay_names_no_env_metric() -> None:
    import rounds.tui

    folder = Path(rounds.tui.__file__).parent
    for path in [*folder.glob("*.py"), *folder.glob("*.tcss")]:
        text = path.read_text(encoding="utf-8")
        for name in ("diagnosis", "exam_f1", "posterior", "hit_ratio", "subgoal"):
            assert name not in text, f"{path.name} names {name}"


async def test_follow_mode_never_shows_a_loading_indicator(eval_run: Path) -> None:
    app = ReplayApp(eval_run, follow=True, refresh_s=0.05)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await indexed(app, pilot)
        for _ in range(20):
            await pilot.pause(0.05)
            assert not screen.loading and not list(app.screen.query("LoadingIndicator"))
        assert "indexing" not in screen.query_one("#status", StatusLine).text


async def test_a_summary_with_values_that_are_not_numbers_is_shown_with_warnings(
    eval_run: Path,
) -> None:
    (eval_run / "summary.json").write_text(
        json.dumps(
            {
                "metrics": {
                    "success": {"value": "high", "low": 0, "high": 1, "n": 3},
                    "outcome": {"value": 0.5, "low": "a", "high": 1.0, "n": 4},
                    "total_reward": "oops",
                    "num_turns": {"value": 2.0, "low": 1.0, "high": 3.0, "n": 8},
                }
            }
        )
    )
    app = ReplayApp(eval_run)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await indexed(app, pilot)
        summary = summary_text(screen)
        assert "outcome            0.500  (n=4)" in summary
        assert "num_turns          2.000 [1.000, 3.000]  (n=8)" in summary
        assert "success " not in summary and "total_reward" not in summary
        messages = " ".join(n.message for n in app._notifications)
        assert "metric 'success' is 'high', not a number" in messages
        assert "metric 'total_reward' is 'oops', not a number" in messages


@pytest.mark.slow
def test_replay_shows_rows_in_a_real_terminal_without_a_resize(
    big_run: tuple[Path, list[str]],
) -> None:
    """In tmux, the list is drawn at once (it used to stay behind the loading indicator until
    the terminal was resized) and answers keys: three opens, the first without a saved index."""
    import os
    import shlex
    import subprocess
    import sys

    if shutil.which("tmux") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("tmux is missing: apt-get install -y tmux")
        pytest.skip("tmux is not installed")
    run, _ = big_run
    socket = f"rounds-test-{os.getpid()}"
    tmux = ["tmux", "-L", socket, "-f", "/dev/null"]
    command = shlex.join(
        [sys.executable, "-c", "from rounds.cli import main; main()", "replay", str(run)]
    )

    def screen_text(session: str) -> str:
        return subprocess.run(
            [*tmux, "capture-pane", "-p", "-t", session],
            capture_output=True,
            text=True,
            check=False,
        ).stdout

    def wait_for_text(session: str, needle: str) -> str:
        deadline = time.time() + 60
        while time.time() < deadline:
            text = screen_text(session)
            if needle in text:
                return text
            time.sleep(0.1)
        raise AssertionError(f"{needle!r} never appeared; the screen:\n{screen_text(session)}")

    try:
        for attempt in range(3):
            session = f"replay{attempt}"
            subprocess.run(
                [*tmux, "new-session", "-d", "-s", session, "-x", "120", "-y", "40", command],
                check=True,
                env={**os.environ, "TERM": "xterm-256color"},
            )
            wait_for_text(session, task(0))
            wait_for_text(session, f"{BIG:,} in the run")
            subprocess.run([*tmux, "send-keys", "-t", session, "G"], check=True)
            wait_for_text(session, task(BIG - 1))
            subprocess.run([*tmux, "send-keys", "-t", session, "q"], check=True)
            deadline = time.time() + 20
            while session in screen_text(session) and time.time() < deadline:
                if subprocess.run([*tmux, "has-session", "-t", session], check=False).returncode:
                    break
                time.sleep(0.1)
        assert (run / ".episodes.index.json").exists()  # the later opens used the saved index
    finally:
        subprocess.run([*tmux, "kill-server"], check=False, capture_output=True)


async def test_a_click_moves_the_cursor_and_a_second_click_opens(
    big_run: tuple[Path, list[str]],
) -> None:
    run, ids = big_run
    app = ReplayApp(run)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await indexed(app, pilot)
        await pilot.press("G", *["k"] * 3)  # a window far from the start
        await pilot.pause()
        table = screen.query_one("#episodes", DataTable)
        row = round(table.scroll_y) + 2  # the header is the first line
        await pilot.click(table, offset=(5, 3))
        assert screen.cursor == screen.start + row and screen.start > 0
        assert highlighted_task(screen) == task(screen.cursor)
        clicked = screen.cursor
        await pilot.click(table, offset=(5, 3))
        assert isinstance(app.screen, EpisodeScreen) and app.screen.episode.id == ids[clicked]


async def test_a_saved_index_is_reused_and_extended_by_lines_written_since(
    big_run: tuple[Path, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from rounds.tui import index as index_module

    run, ids = big_run
    async with ReplayApp(run).run_test(size=(120, 40)) as pilot:
        await indexed(pilot.app, pilot)  # type: ignore[arg-type]
    saved = run / ".episodes.index.json"
    assert saved.exists()
    lines = (run / "episodes.jsonl").read_bytes().splitlines(keepends=True)
    with (run / "episodes.jsonl").open("ab") as handle:
        handle.write(lines[-1].replace(b"ep01199", b"ep99999"))
    decoded: list[int] = []
    from rounds.storage import scan_jsonl as scan

    def counting_scan(*args: Any, **kwargs: Any) -> Any:
        for line in scan(*args, **kwargs):
            decoded.append(line.number)
            yield line

    monkeypatch.setattr(index_module, "scan_jsonl", counting_scan)
    app = ReplayApp(run)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await indexed(app, pilot)
        assert [r.id for r in screen.view] == [*ids, "ep99999"]
        assert screen.index.warnings[0].startswith(f"line {BAD_LINE}: skipped")
        await pilot.press("G", "enter")
        assert isinstance(app.screen, EpisodeScreen) and app.screen.episode.id == "ep99999"
    # The first screenful, then only the line written since: the rest came from the saved index.
    assert decoded == [*range(1, PAGE + 1), BIG + 2]


async def test_follow_mode_searches_and_sorts_episodes_written_later(tmp_path: Path) -> None:
    run = tmp_path / "growing"
    write_big_run(run, episodes=40)
    path = run / "episodes.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:30]))
    app = ReplayApp(run, follow=True, refresh_s=0.05)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await indexed(app, pilot)
        await pilot.press("r")  # newest first
        await ask(pilot, "slash", "marker-0003")  # episodes 30 to 39, not written yet
        await wait_for(pilot, lambda: not screen._search_busy and screen.searched == 30)
        assert screen.view == []
        with path.open("ab") as handle:
            handle.write(b"".join(lines[30:]))
        await wait_for(pilot, lambda: len(screen.view) == 10)
        assert [r.task_id for r in screen.view] == [task(i) for i in range(39, 29, -1)]
        assert highlighted_task(screen) == task(39)


async def test_follow_mode_lists_afresh_a_file_replaced_by_a_new_run(tmp_path: Path) -> None:
    run = tmp_path / "restarted"
    ids = write_big_run(run, episodes=30)
    path = run / "episodes.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    app = ReplayApp(run, follow=True, refresh_s=0.05)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await indexed(app, pilot)
        assert len(screen.view) == 30
        path.write_bytes(b"".join(lines[20:25]))  # a new run started over in the same place
        await wait_for(pilot, lambda: [r.id for r in screen.view] == ids[20:25])
        assert len(screen.index.rows) == 5 and highlighted_task(screen) == task(20)


# ------------------------------------------------------------------ screenshots


@pytest.fixture(scope="module")
def gui_run_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run of two recorded GUI-v0 episodes (expert agent, screenshots on); the second's
    turn-2 screen hash is altered, as if the env had changed since the run."""
    import gymnasium as gym

    import rounds  # noqa: F401  (registers the envs)
    from rounds.agents import EpisodeSpec, run_episodes
    from rounds.agents.scripted import ScriptedAgent

    path = tmp_path_factory.mktemp("gui") / "gui_run"
    path.mkdir()
    specs = [EpisodeSpec(task_id=f"files.rename-validation-{i}", seed=i) for i in range(2)]
    episodes = [
        r.episode
        for r in run_episodes(
            lambda: gym.make("rounds/GUI-v0", observation="screenshot"),
            ScriptedAgent("expert"),
            specs,
            env_id="rounds/GUI-v0",
        )
    ]
    episodes[1].turns[0].info["screenshot_sha256"] = "0" * 64
    (path / "episodes.jsonl").write_text(
        "".join(e.model_dump_json() + "\n" for e in episodes), encoding="utf-8"
    )
    (path / "config.yaml").write_text("kind: eval\nenv_id: rounds/GUI-v0\nagent: scripted\n")
    return path


def turn_text(screen: EpisodeScreen) -> str:
    """The turn pane as the user reads it."""
    from rich.console import Console

    console = Console(width=120, record=True, file=io.StringIO())
    console.print(screen.query_one("#turn-body", Static).content)
    return console.export_text()


async def test_a_turn_with_a_screenshot_is_marked_and_s_saves_the_recorded_png(
    tmp_path: Path, gui_run_source: Path, eval_run: Path
) -> None:
    import hashlib

    from rounds.tui.screenshots import screen_hash

    run = Path(shutil.copytree(gui_run_source, tmp_path / "gui_run", ignore=FIXTURE_IGNORE))
    app = ReplayApp(run)
    async with app.run_test(size=(120, 40)) as pilot:
        await indexed(app, pilot)
        await pilot.press("enter")
        screen = app.screen
        assert isinstance(screen, EpisodeScreen) and screen.episode.num_turns >= 2
        assert "+ screenshot" in turn_text(screen) and "s saves it as a PNG" in turn_text(screen)
        episode = screen.episode
        await pilot.press("j", "s")
        await pilot.pause(0.1)
        png = (run / "exports" / f"{episode.id}-turn2.png").read_bytes()
        assert png.startswith(b"\x89PNG")
        assert hashlib.sha256(png).hexdigest() == episode.turns[0].info["screenshot_sha256"]
        assert hashlib.sha256(png).hexdigest() == screen_hash(episode, 1)
        await pilot.press("k", "s")
        await pilot.pause(0.1)
        first = (run / "exports" / f"{episode.id}-turn1.png").read_bytes()
        assert hashlib.sha256(first).hexdigest() == episode.meta["reset_info"]["screenshot_sha256"]
        # The second episode's recorded hash no longer matches: the UI says so, writes nothing.
        await pilot.press("n", "j", "s")
        await pilot.pause(0.1)
        altered = app.screen.episode  # type: ignore[attr-defined]
        assert not (run / "exports" / f"{altered.id}-turn2.png").exists()
        messages = [n.message for n in app._notifications]
        assert any("differs from the recorded one" in m for m in messages), messages
    text_only = ReplayApp(eval_run)  # a text env: no marker, and s says there is no screenshot
    async with text_only.run_test(size=(120, 40)) as pilot:
        await indexed(text_only, pilot)
        await pilot.press("enter")
        assert "+ screenshot" not in turn_text(text_only.screen)  # type: ignore[arg-type]
        await pilot.press("s")
        await pilot.pause(0.1)
        assert any("had no screenshot" in n.message for n in text_only._notifications)
        assert not (eval_run / "exports").exists()


def test_the_replay_rebuilds_screens_through_the_env_hook_only() -> None:
    from rounds.tui.screenshots import ScreenshotUnavailable, rebuilder

    for path in Path(__file__).parent.parent.joinpath("rounds", "tui").glob("*.py"):
        assert "envs.gui" not in path.read_text(encoding="utf-8"), path.name
    with pytest.raises(ScreenshotUnavailable, match="does not say how"):
        rebuilder("rounds/Household-v0")
    with pytest.raises(ScreenshotUnavailable, match="not an env installed here"):
        rebuilder("nobody/Nothing-v0")
