from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rounds.cli import app
from rounds.storage import RunDir

runner = CliRunner()


def flat(text: str) -> str:
    """Output with Rich's line wrapping undone, for matching whole sentences."""
    return " ".join(text.split())


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
    assert "resample different units" not in result.output  # one episode per task: same units
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
    assert "{'max_turns': 5} -> {'max_turns': 6}" in flat(changed.output)


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
            "has no option 'colour'",
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


def household_eval(out: Path, *extra: str) -> list[str]:
    return ["eval", "rounds/Household-v0", "--out", str(out), "-k", "max_turns=5", *extra]


def test_env_arg_help_shows_its_yaml_list() -> None:
    result = runner.invoke(app, ["eval", "--help"], terminal_width=300)
    assert result.exit_code == 0
    assert "[heat, cool])." in result.output  # Rich markup once swallowed the brackets


@pytest.mark.parametrize(
    ("pair", "needle"),
    [
        ("max_turns=abc", "-k max_turns: max_turns takes int, got 'abc' (str)"),
        ("max_turns=2.5", "max_turns takes int, got 2.5 (float)"),
        ("task_types=heat", "task_types takes Sequence[str] | None, got 'heat' (str)"),
        ("colour=red", "rounds/Household-v0 has no option 'colour'; its options:"),
    ],
)
def test_env_arg_of_the_wrong_type_names_the_option_type_and_value(
    tmp_path: Path, pair: str, needle: str
) -> None:
    result = runner.invoke(
        app,
        ["eval", "rounds/Household-v0", "--agent", "random", "-k", pair, "--out", str(tmp_path)],
        terminal_width=300,
    )
    assert result.exit_code == 2, result.output
    assert needle in flat(result.output)
    assert "Traceback" not in result.output and "TypeError" not in result.output


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--episodes", "0"], "Invalid value for '--episodes'"),
        (["--episodes", "-5"], "Invalid value for '--episodes'"),
        (["--tasks", "0"], "Invalid value for '--tasks'"),
        (["--episodes", "3", "--tasks", "2"], "--episodes 3 and --tasks 2 both set the number"),
        (
            ["--episodes", "3", "--samples-per-task", "2"],
            "for 2 episodes of each of 3 tasks pass --tasks 3 instead of --episodes 3",
        ),
        (["-k", "split=train"], "pass the split with --split train"),
    ],
)
def test_eval_rejects_counts_it_would_ignore_or_misread(
    tmp_path: Path, extra: list[str], needle: str
) -> None:
    out = tmp_path / "run"
    args = ["eval", "rounds/Household-v0", "--agent", "random", "--out", str(out), *extra]
    result = runner.invoke(app, args, terminal_width=300)
    assert result.exit_code == 2, result.output
    assert needle in flat(result.output)
    assert not (out / "episodes.jsonl").exists()


def test_eval_does_not_wrap_more_tasks_than_the_split_holds(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["eval", "rounds/DiagGym-v0", "--agent", "random", "--out", str(out)]
    result = runner.invoke(app, [*args, "--tasks", "201"], terminal_width=300)
    assert result.exit_code == 2, result.output
    assert (
        "--tasks 201 is more than the 200 tasks of the 'test' split of rounds/DiagGym-v0"
        in flat(result.output)
    )
    assert "pass --tasks 200 for every task" in flat(result.output)
    assert not (out / "episodes.jsonl").exists()
    too_many = runner.invoke(app, [*args, "--episodes", "300"], terminal_width=300)
    assert too_many.exit_code == 2 and "pass --episodes 200" in flat(too_many.output)


def _interrupted_random_run(out: Path) -> list[str]:
    """A finished 4-episode random run cut back to its first 2 episodes; returns its args."""
    args = household_eval(out, "--agent", "random", "--episodes", "4")
    assert runner.invoke(app, args).exit_code == 0
    lines = (out / "episodes.jsonl").read_text().splitlines(keepends=True)
    (out / "episodes.jsonl").write_text("".join(lines[:2]))
    return args


@pytest.mark.parametrize(
    ("damage", "needle"),
    [
        ("agent: [unclosed\n", "its config.yaml is unreadable (ParserError"),
        (b"\xff\xfe\x00bad", "its config.yaml is unreadable (UnicodeDecodeError"),
        ("just a string\n", "its config.yaml lacks env_id, env_kwargs, agent"),
        ("env_id: rounds/Household-v0\n", "its config.yaml lacks env_kwargs, agent"),
        (None, "it holds episodes but no config.yaml"),
    ],
)
def test_eval_resume_refuses_a_config_it_cannot_check(
    tmp_path: Path, damage: str | bytes | None, needle: str
) -> None:
    out = tmp_path / "run"
    args = _interrupted_random_run(out)
    config = out / "config.yaml"
    if damage is None:
        config.unlink()
    elif isinstance(damage, bytes):
        config.write_bytes(damage)
    else:
        config.write_text(damage)
    expert = [a if a != "random" else "expert" for a in args]
    result = runner.invoke(app, [*expert, "--resume"], terminal_width=300)
    assert result.exit_code == 2, result.output
    assert needle in flat(result.output) and "Traceback" not in result.output
    episodes = list(RunDir(out).episodes())
    assert len(episodes) == 2 and {e.agent for e in episodes} == {"random"}


def test_eval_resume_names_each_changed_setting(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = _interrupted_random_run(out)
    expert = [a if a != "random" else "expert" for a in args]
    result = runner.invoke(app, [*expert, "--seed", "3", "--resume"], terminal_width=300)
    assert result.exit_code == 2, result.output
    text = flat(result.output)
    assert "this run's settings differ from its saved config.yaml" in text
    assert "agent: 'random' -> 'expert'" in text and "seed: 0 -> 3" in text
    assert "agent differ" not in text


def test_eval_resume_refuses_episodes_of_another_agent(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = _interrupted_random_run(out)
    episodes = list(RunDir(out).episodes())
    stranger = episodes[0].model_copy(update={"agent": "expert"})
    with (out / "episodes.jsonl").open("a") as f:
        f.write(stranger.model_dump_json() + "\n")
    result = runner.invoke(app, [*args, "--resume"], terminal_width=300)
    assert result.exit_code == 2, result.output
    assert "episodes.jsonl holds episodes of rounds/Household-v0 / expert" in flat(result.output)


def test_eval_error_leaves_no_progress_bar_behind(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = _interrupted_random_run(out)
    result = runner.invoke(app, [*args, "-k", "max_rooms=1", "--resume"], terminal_width=300)
    assert result.exit_code == 2 and "cannot resume" in result.output
    assert "━" not in result.output and "random on rounds/Household-v0" not in result.output


def test_eval_warns_when_episodes_are_cut_short(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rounds.envs.household.env import HouseholdEnv

    def broken(self: HouseholdEnv, text: str) -> None:
        raise RuntimeError("the simulator fell over")

    monkeypatch.setattr(HouseholdEnv, "_act", broken)
    out = tmp_path / "run"
    result = runner.invoke(
        app, household_eval(out, "--agent", "random", "--episodes", "2"), terminal_width=300
    )
    assert result.exit_code == 0, result.output
    text = flat(result.output)
    assert "warning: episodes cut short: 2 of 2 (env error:" in text
    assert "the simulator fell over (2))" in text


def test_eval_summary_says_what_each_interval_resamples(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = household_eval(out, "--agent", "random", "--tasks", "3", "--samples-per-task", "2")
    result = runner.invoke(app, args, terminal_width=200)
    assert result.exit_code == 0, result.output
    text = flat(result.output)
    assert "Intervals: 95% bootstrap over episodes" in text
    assert "their intervals resample different units: pass@1's resamples tasks" in text
    assert "the success metric's resamples episodes" in text
    assert "'success mean/median/iqm/optimality_gap' rows resample samples within tasks" in text
    assert "samples within tasks" in text  # the aggregates' column, K = 2 for every task
    summary = RunDir(out).read_summary()
    assert summary["metrics"]["success"]["resampled"] == "episodes"
    assert summary["pass_at_k"]["1"]["resampled"] == "tasks"


def test_play_shows_actions_and_observations_as_text_not_markup() -> None:
    result = runner.invoke(
        app,
        ["play", "rounds/Household-v0", "--seed", "1"],
        input="[/]\n[bold]x\n:quit\n",
        terminal_width=200,
    )
    assert result.exit_code == 0, result.output
    assert "I don't understand '[/]'" in result.output
    assert "I don't understand '[bold]x'" in result.output


def test_play_reports_an_env_that_raises_instead_of_a_traceback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from rounds.envs.household.env import HouseholdEnv

    def broken(self: HouseholdEnv, text: str) -> None:
        raise ValueError("Exceeds the limit (4300 digits) for integer string conversion")

    monkeypatch.setattr(HouseholdEnv, "_act", broken)
    result = runner.invoke(
        app,
        ["play", "rounds/Household-v0", "--task-id", "pick-test-0000"],
        input="look\n",
        terminal_width=300,
    )
    assert result.exit_code == 1, result.output
    text = flat(result.output)
    assert "rounds/Household-v0 raised ValueError on that action: Exceeds the limit" in text
    assert "--task-id pick-test-0000" in text and "Traceback" not in result.output


def test_compare_reports_an_unwritable_output(tmp_path: Path) -> None:
    runs = []
    for agent in ("expert", "random"):
        out = tmp_path / agent
        assert (
            runner.invoke(app, household_eval(out, "--agent", agent, "--episodes", "3")).exit_code
            == 0
        )
        runs.append(str(out))
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = runner.invoke(
        app, ["compare", *runs, "--out", str(blocker / "report")], terminal_width=300
    )
    assert result.exit_code == 2, result.output
    assert "cannot write the report to" in result.output and "Traceback" not in result.output


def test_env_arg_values_are_converted_to_the_option_type_and_presets_pass() -> None:
    import rounds
    from rounds.cli.app import check_env_kwargs
    from rounds.registration import list_envs

    checked, problems = check_env_kwargs(
        "rounds/Household-v0", {"max_turns": "5", "meta_reasoning_bonus": 1}
    )
    assert problems == [] and checked == {"max_turns": 5, "meta_reasoning_bonus": 1.0}
    assert type(checked["max_turns"]) is int
    for entry in list_envs():  # every registered env's own variants are valid -k options
        for name, preset in entry.variants.items():
            assert check_env_kwargs(entry.id, preset)[1] == [], (entry.id, name)
    del rounds
