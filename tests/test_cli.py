from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rounds.cli import app
from rounds.storage import RunDir

runner = CliRunner()


def test_list_shows_envs_and_variants() -> None:
    result = runner.invoke(app, ["list"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "rounds/Household-v0" in result.output
    assert "single-room" in result.output and "max_rooms" in result.output


def test_eval_writes_a_run_directory(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = runner.invoke(
        app,
        [
            "eval",
            "rounds/Household-v0",
            "--agent",
            "expert",
            "--episodes",
            "12",
            "--out",
            str(out),
            "--concurrency",
            "3",
        ],
        terminal_width=200,
    )
    assert result.exit_code == 0, result.output
    assert "success" in result.output and "95% interval" in result.output
    run = RunDir(out)
    episodes = list(run.episodes())
    assert len(episodes) == 12
    assert sorted(e.meta["slot"] for e in episodes) == list(range(12))
    assert all(e.success and e.agent == "expert" for e in episodes)
    assert run.read_config()["episodes"] == 12
    summary = json.loads(run.summary_path.read_text())
    assert summary["metrics"]["success"]["value"] == 1.0
    assert summary["counts"] == {
        "episodes": 12,
        "tasks": 12,
        "samples_per_task": {"min": 1, "max": 1},
    }
    assert summary["settings"]["split"] == "test"


def test_eval_refuses_to_overwrite_and_resumes(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = [
        "eval",
        "rounds/Household-v0",
        "--agent",
        "random",
        "--episodes",
        "4",
        "--out",
        str(out),
        "-k",
        "max_turns=5",
    ]
    assert runner.invoke(app, args).exit_code == 0
    # Simulate an interrupted run: keep the first two episodes.
    lines = (out / "episodes.jsonl").read_text().splitlines(keepends=True)
    (out / "episodes.jsonl").write_text("".join(lines[:2]))
    again = runner.invoke(app, args)
    assert again.exit_code == 2 and "--resume" in again.output
    resumed = runner.invoke(app, [*args, "--resume"])
    assert resumed.exit_code == 0, resumed.output
    slots = sorted(e.meta["slot"] for e in RunDir(out).episodes())
    assert slots == [0, 1, 2, 3]
    changed = runner.invoke(app, [*args[:-2], "-k", "max_turns=6", "--resume"])
    assert changed.exit_code == 2 and "env_kwargs" in changed.output


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["eval", "rounds/Nope-v0", "--agent", "expert"], "Unknown env"),
        (
            ["eval", "rounds/Household-v0", "--agent", "oracle", "--out", "{tmp}"],
            "unknown agent 'oracle'",
        ),
        (
            [
                "eval",
                "rounds/Household-v0",
                "--agent",
                "expert",
                "-k",
                "max_rooms",
                "--out",
                "{tmp}",
            ],
            "KEY=VALUE",
        ),
        (
            [
                "eval",
                "rounds/Household-v0",
                "--agent",
                "expert",
                "-k",
                "colour=1",
                "--out",
                "{tmp}",
            ],
            "cannot make",
        ),
        (
            [
                "eval",
                "rounds/Household-v0",
                "--agent",
                "expert",
                "--variant",
                "huge",
                "--out",
                "{tmp}",
            ],
            "no variant",
        ),
        (["play", "rounds/Household-v0", "--task-id", "fly-test-0001"], "bad household task id"),
    ],
)
def test_cli_errors_say_what_to_do(tmp_path: Path, args: list[str], needle: str) -> None:
    args = [a.replace("{tmp}", str(tmp_path / "x")) for a in args]
    result = runner.invoke(app, args, terminal_width=200)
    assert result.exit_code == 2, result.output
    assert needle in result.output
    assert "Traceback" not in result.output


def test_play_a_whole_episode_from_stdin() -> None:
    from rounds.envs.household.env import HouseholdEnv
    from rounds.envs.household.expert import expert_command

    env = HouseholdEnv()
    env.reset(options={"task_id": "pick-test-0000"})
    moves = []
    while not env.world.goal_reached():
        moves.append(expert_command(env.world))
        env.step(moves[-1])
    script = "\n".join([":commands", ":hint", "dance", *moves]) + "\n"
    result = runner.invoke(
        app,
        ["play", "rounds/Household-v0", "--task-id", "pick-test-0000"],
        input=script,
        terminal_width=200,
    )
    assert result.exit_code == 0, result.output
    assert "Your task is to" in result.output
    assert "hint:" in result.output and "go to" in result.output
    assert "don't understand" in result.output
    assert "Episode finished" in result.output and "outcome 1" in result.output


def test_play_stops_on_end_of_input() -> None:
    result = runner.invoke(app, ["play", "rounds/Household-v0", "--seed", "1"], input="look\n")
    assert result.exit_code == 0, result.output
    assert "Stopped." in result.output


def test_eval_with_a_local_model_agent(tmp_path: Path) -> None:
    out = tmp_path / "hf"
    args = [
        "eval",
        "rounds/Household-v0",
        "--agent",
        "hf",
        "--model",
        "tiny",
        "--episodes",
        "3",
        "--concurrency",
        "3",
    ]
    args += ["--max-new-tokens", "8", "-k", "max_turns=3", "--out", str(out)]
    result = runner.invoke(app, args, terminal_width=200)
    assert result.exit_code == 0, result.output
    episodes = list(RunDir(out).episodes())
    assert len(episodes) == 3 and all(e.agent == "hf" and e.model == "tiny" for e in episodes)
    assert all(e.num_turns == 3 and e.turns[0].tokens.completion > 0 for e in episodes)
    assert RunDir(out).read_config()["agent_options"] == {"model": "tiny", "max_new_tokens": 8}


def test_eval_model_agent_errors(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["eval", "rounds/Household-v0", "--agent", "hf", "--out", str(tmp_path / "a")]
    )
    assert result.exit_code == 2 and "needs a model" in result.output
    result = runner.invoke(
        app,
        [
            "eval",
            "rounds/Household-v0",
            "--agent",
            "expert",
            "--base-url",
            "http://x",
            "--out",
            str(tmp_path / "b"),
        ],
    )
    assert result.exit_code == 2 and "--base-url is only for --agent openai" in result.output
