"""``rounds eval ENV --agent NAME``: evaluate an agent and write a run directory."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from rounds.cli.app import (
    EnvArgs,
    Variant,
    app,
    console,
    env_kwargs_for,
    err_console,
    fail,
    make_env_or_fail,
    parse_env_args,
)


def agent_options_for(
    agent: str,
    model: str | None,
    base_url: str | None,
    temperature: float | None,
    max_new_tokens: int | None,
    pairs: list[str] | None,
) -> dict[str, Any]:
    """The agent's options from the CLI flags (``max_new_tokens`` is ``max_tokens`` for openai)."""
    options: dict[str, Any] = {}
    if model is not None:
        options["model"] = model
    if base_url is not None:
        if agent not in ("openai", "server"):
            fail("--base-url is only for --agent openai or server")
        options["base_url"] = base_url
    if temperature is not None:
        options["temperature"] = temperature
    if max_new_tokens is not None:
        options["max_tokens" if agent == "openai" else "max_new_tokens"] = max_new_tokens
    options.update(parse_env_args(pairs))
    return options


def cli_words(message: str) -> str:
    """An evaluation error in the command's words: ``tasks=5`` becomes ``--tasks 5``."""
    return re.sub(
        r"\b(episodes|tasks|samples_per_task)=",
        lambda m: "--" + m.group(1).replace("_", "-") + " ",
        message,
    )


def _interval(stat: dict[str, Any]) -> str:
    low, high = stat.get("low"), stat.get("high")
    value = stat.get("value")
    text = "-" if value is None else f"{value:.3f}"
    return text + (f" [{low:.3f}, {high:.3f}]" if low is not None and high is not None else "")


def print_summary(summary: dict[str, Any], title: str) -> None:
    """A table of every metric with its 95% interval (episodes resampled)."""
    from rich.table import Table

    table = Table(
        title=title,
        caption="Intervals: 95% bootstrap over episodes (n = episodes averaged).",
        caption_justify="left",
    )
    table.add_column("metric", style="bold")
    table.add_column("mean", justify="right")
    table.add_column("95% interval", justify="right")
    table.add_column("n", justify="right")
    for name, stat in summary.get("metrics", {}).items():
        value = stat.get("value")
        low, high = stat.get("low"), stat.get("high")
        interval = f"[{low:.3f}, {high:.3f}]" if low is not None and high is not None else "-"
        table.add_row(
            name, "-" if value is None else f"{value:.3f}", interval, str(stat.get("n", ""))
        )
    console.print(table)


def interval_note(summary: dict[str, Any]) -> str | None:
    """Why pass@1 and the success mean carry different intervals, when both are shown."""
    success = summary.get("metrics", {}).get("success")
    pass1 = summary.get("pass_at_k", {}).get("1")
    several = summary.get("counts", {}).get("samples_per_task", {}).get("max", 1) > 1
    if not success or not pass1 or not several:  # one episode per task: the same interval
        return None
    unit = summary.get("aggregates", {}).get("success", {}).get("mean", {}).get("resampled")
    return (
        f"pass@1 ({pass1['value']:.3f}) and the success metric above ({success['value']:.3f}) "
        "average the same episodes, but their intervals resample different units: pass@1's "
        "resamples tasks, so it includes how much tasks differ (another draw of tasks could "
        "score differently), while the success metric's resamples episodes and says only how "
        "precisely these episodes fix the mean; pass@1's is wider when tasks differ in "
        "difficulty."
        + (f" The 'success mean/median/iqm/optimality_gap' rows resample {unit}." if unit else "")
    )


def print_task_statistics(summary: dict[str, Any]) -> None:
    """pass@k, answer and token entropy, and the robust aggregates of per-task success,
    each with what its interval resampled."""
    from rich.table import Table

    table = Table(
        title="per-task statistics (95% intervals)",
        caption=interval_note(summary),
        caption_justify="left",
    )
    table.add_column("statistic", style="bold")
    table.add_column("value", justify="right")
    table.add_column("resampled", style="dim")
    table.add_column("n", justify="right")

    def row(name: str, stat: dict[str, Any]) -> None:
        table.add_row(name, _interval(stat), stat.get("resampled") or "-", str(stat.get("n", "")))

    for k, stat in summary.get("pass_at_k", {}).items():
        row(f"pass@{k}", stat)
    for key in ("answer_entropy", "token_entropy"):
        if key in summary:
            row(f"{key} (nats)", summary[key])
    for name, stat in summary.get("aggregates", {}).get("success", {}).items():
        row(f"success {name}", stat)
    if table.row_count:
        console.print(table)


def truncation_report(reasons: Counter[str], episodes: int) -> str | None:
    """A warning when episodes were cut short (agent, env or timeout errors), with the
    commonest reasons: a run whose agent could not connect otherwise looks like a bad score."""
    cut = sum(reasons.values())
    if not cut:
        return None
    common = "; ".join(f"{reason} ({count})" for reason, count in reasons.most_common(3))
    return f"episodes cut short: {cut} of {episodes} ({common})"


@app.command("eval")
def eval_command(
    env_id: Annotated[str, typer.Argument(help="Env id, e.g. rounds/Household-v0.")],
    agent: Annotated[
        str,
        typer.Option(
            help="Agent: a scripted baseline of the env (expert, bayes, random, ...), or hf, vllm, server, openai."
        ),
    ],
    model: Annotated[
        str | None,
        typer.Option(
            help="Model for hf/vllm/openai: a local path, a hub id, 'tiny', or a served model name."
        ),
    ] = None,
    base_url: Annotated[
        str | None,
        typer.Option(
            help="OpenAI-compatible endpoint for --agent openai (default $OPENAI_BASE_URL), or the rollout server of --agent server."
        ),
    ] = None,
    temperature: Annotated[
        float | None, typer.Option(help="Sampling temperature of a model agent.")
    ] = None,
    max_new_tokens: Annotated[
        int | None, typer.Option(help="Longest reply per turn of a model agent.")
    ] = None,
    agent_arg: Annotated[
        list[str] | None,
        typer.Option("--agent-arg", "-a", help="Agent option KEY=VALUE (YAML value). Repeatable."),
    ] = None,
    out: Annotated[Path, typer.Option(help="Run directory to write.")] = Path("runs/eval"),
    episodes: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Run the split's first N tasks once each (the same as --tasks N with one sample; "
            "not with --tasks or --samples-per-task).",
        ),
    ] = None,
    tasks: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Run the split's first T tasks, --samples-per-task times each (default 10, "
            "at most the split's size).",
        ),
    ] = None,
    samples_per_task: Annotated[
        int,
        typer.Option(
            "--samples-per-task", min=1, help="Independent episodes per task (K), for pass@k."
        ),
    ] = 1,
    split: Annotated[str, typer.Option(help="Task split: train, validation or test.")] = "test",
    seed: Annotated[int, typer.Option(min=0, help="Base seed of resets and sampling.")] = 0,
    concurrency: Annotated[int, typer.Option(min=1, help="Episodes run at once.")] = 1,
    backend: Annotated[
        str,
        typer.Option(
            help="Where envs run: thread (the chat loop's threads), process (worker processes "
            "for CPU-heavy envs) or ray (Ray actors, this machine or RAY_ADDRESS's cluster)."
        ),
    ] = "thread",
    env_workers: Annotated[
        int | None,
        typer.Option(min=1, help="Env workers of --backend process/ray (default: --concurrency)."),
    ] = None,
    resume: Annotated[bool, typer.Option(help="Continue an interrupted run in --out.")] = False,
    variant: Variant = None,
    env_arg: EnvArgs = None,
) -> None:
    """Evaluate an agent on an env's tasks; writes config.yaml, episodes.jsonl, summary.json."""
    from pydantic import ValidationError
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from rounds.agents.evaluate import EvalConfig, RunDirError, evaluate, plan_episodes
    from rounds.agents.loop import Rollout
    from rounds.storage import RunDir
    from rounds.text_env import TextEnv

    kwargs = env_kwargs_for(env_id, variant, env_arg)
    if "split" in kwargs:
        fail(f"pass the split with --split {kwargs['split']}, not as an env option")
    agent_options = agent_options_for(
        agent, model, base_url, temperature, max_new_tokens, agent_arg
    )
    try:
        config = EvalConfig(
            env_id=env_id,
            env_kwargs=kwargs,
            agent=agent,
            agent_options=agent_options,
            split=split,
            episodes=episodes,
            tasks=tasks,
            samples_per_task=samples_per_task,
            seed=seed,
            concurrency=concurrency,
            env_backend=backend,
            env_workers=env_workers,
        )
    except ValidationError as err:
        fail(
            cli_words(
                "; ".join(
                    (f"{e['loc'][0]}={e['input']!r}: " if e["loc"] else "")
                    + str(e["msg"]).removeprefix("Value error, ")
                    for e in err.errors()
                )
            )
        )
    env = make_env_or_fail(env_id, {**kwargs, "split": split}).unwrapped
    try:
        if not isinstance(env, TextEnv):
            fail(
                f"{env_id} is not a rounds text env (rounds.text_env.TextEnv); it cannot be evaluated"
            )
        planned = len(plan_episodes(config, env))
    except ValueError as err:
        fail(cli_words(str(err)))
    finally:
        env.close()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        fail(f"cannot create the run directory {out}: {err.strerror or err}; choose another --out")

    finished = {"n": 0, "success": 0}
    reasons: Counter[str] = Counter()
    error: str | None = None
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("success {task.fields[rate]}"),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        bar = progress.add_task(escape(f"{agent} on {env_id}"), total=planned, rate="-")

        def on_episode(rollout: Rollout) -> None:
            finished["n"] += 1
            finished["success"] += int(rollout.episode.success)
            reason = rollout.episode.meta.get("truncation_reason")
            if reason:
                reasons[str(reason).splitlines()[0][:160]] += 1
            rate = f"{finished['success'] / finished['n']:.0%}"
            progress.update(bar, advance=1, rate=rate)

        try:
            if resume:
                already = sum(1 for _ in RunDir(out).episodes())
                progress.update(bar, completed=already)
            summary = evaluate(config, out, resume=resume, on_episode=on_episode)
        except RunDirError as err:
            error = str(err)
        except KeyboardInterrupt:
            error = (
                f"interrupted. Episodes finished in this session: {finished['n']}, saved in "
                f"{out}; continue with the same command and --resume"
            )
        except (ValueError, ImportError, OSError) as err:
            error = (
                f"{agent} on {env_id} failed: {type(err).__name__}: {str(err).rstrip('.')}. "
                + (
                    f"Episodes finished: {finished['n']}, saved in {out}; fix the cause, "
                    "then continue with the same command and --resume"
                    if finished["n"]
                    else "No episode finished: fix the cause and run the command again"
                )
            )
        if error is not None:  # erase the bar: no half-drawn bar left under the error
            progress.update(bar, visible=False)
            progress.live.transient = True
    if error is not None:
        fail(cli_words(error), code=130 if error.startswith("interrupted") else 2)
    print_summary(summary, f"{agent} on {env_id} ({split} split)")
    print_task_statistics(summary)
    warning = truncation_report(reasons, finished["n"])
    if warning:
        err_console.print(f"[yellow]warning:[/] {escape(warning)}", soft_wrap=True)
    console.print(f"Run directory: [bold]{escape(str(out))}[/]")
