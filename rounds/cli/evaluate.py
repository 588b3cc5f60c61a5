"""``rounds eval ENV --agent NAME``: evaluate an agent and write a run directory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from rounds.cli.app import EnvArgs, Variant, app, console, env_kwargs_for, fail, parse_env_args


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
        if agent != "openai":
            fail("--base-url is only for --agent openai")
        options["base_url"] = base_url
    if temperature is not None:
        options["temperature"] = temperature
    if max_new_tokens is not None:
        options["max_tokens" if agent == "openai" else "max_new_tokens"] = max_new_tokens
    options.update(parse_env_args(pairs))
    return options


def print_summary(summary: dict[str, Any], title: str) -> None:
    """A table of every metric with its 95% interval."""
    from rich.table import Table

    table = Table(title=title)
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


def _interval(stat: dict[str, Any]) -> str:
    low, high = stat.get("low"), stat.get("high")
    value = stat.get("value")
    text = "-" if value is None else f"{value:.3f}"
    return text + (f" [{low:.3f}, {high:.3f}]" if low is not None and high is not None else "")


def print_task_statistics(summary: dict[str, Any]) -> None:
    """pass@k, answer and token entropy, and the robust aggregates of per-task success."""
    from rich.table import Table

    table = Table(title="per-task statistics (95% intervals)")
    table.add_column("statistic", style="bold")
    table.add_column("value", justify="right")
    for k, stat in summary.get("pass_at_k", {}).items():
        table.add_row(f"pass@{k}", _interval(stat))
    for key in ("answer_entropy", "token_entropy"):
        if key in summary:
            table.add_row(f"{key} (nats)", _interval(summary[key]))
    for name, stat in summary.get("aggregates", {}).get("success", {}).items():
        table.add_row(f"success {name}", _interval(stat))
    if table.row_count:
        console.print(table)


@app.command("eval")
def eval_command(
    env_id: Annotated[str, typer.Argument(help="Env id, e.g. rounds/Household-v0.")],
    agent: Annotated[
        str,
        typer.Option(
            help="Agent: a scripted baseline of the env (expert, bayes, random, ...), or hf, vllm, openai."
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
            help="OpenAI-compatible endpoint for --agent openai (default $OPENAI_BASE_URL)."
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
    episodes: Annotated[int | None, typer.Option(help="Tasks to run, one episode each.")] = None,
    tasks: Annotated[int | None, typer.Option(help="Tasks to run (the split's first T).")] = None,
    samples_per_task: Annotated[
        int,
        typer.Option(
            "--samples-per-task", min=1, help="Independent episodes per task (K), for pass@k."
        ),
    ] = 1,
    split: Annotated[str, typer.Option(help="Task split: train, validation or test.")] = "test",
    seed: Annotated[int, typer.Option(help="Base seed of resets and sampling.")] = 0,
    concurrency: Annotated[int, typer.Option(min=1, help="Episodes run at once.")] = 1,
    resume: Annotated[bool, typer.Option(help="Continue an interrupted run in --out.")] = False,
    variant: Variant = None,
    env_arg: EnvArgs = None,
) -> None:
    """Evaluate an agent on an env's tasks; writes config.yaml, episodes.jsonl, summary.json."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from rounds.agents.evaluate import EvalConfig, RunDirError, evaluate, plan_episodes
    from rounds.agents.loop import Rollout
    from rounds.registration import make

    kwargs = env_kwargs_for(env_id, variant, env_arg)
    agent_options = agent_options_for(
        agent, model, base_url, temperature, max_new_tokens, agent_arg
    )
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
    )
    try:
        env = make(env_id, split=split, **kwargs).unwrapped
        planned = len(plan_episodes(config, env))
        env.close()
    except (TypeError, ValueError) as err:
        fail(f"cannot make {env_id} with {kwargs}: {err}")

    finished = {"n": 0, "success": 0}
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("success {task.fields[rate]}"),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        bar = progress.add_task(f"{agent} on {env_id}", total=planned, rate="-")

        def on_episode(rollout: Rollout) -> None:
            finished["n"] += 1
            finished["success"] += int(rollout.episode.success)
            rate = f"{finished['success'] / finished['n']:.0%}"
            progress.update(bar, advance=1, rate=rate)

        try:
            if resume:
                from rounds.storage import RunDir

                already = sum(1 for _ in RunDir(out).episodes())
                progress.update(bar, completed=already)
            summary = evaluate(config, out, resume=resume, on_episode=on_episode)
        except RunDirError as err:
            fail(str(err))
        except (ValueError, ImportError) as err:
            fail(str(err))
    print_summary(summary, f"{agent} on {env_id} ({split} split)")
    print_task_statistics(summary)
    console.print(f"Run directory: [bold]{out}[/]")
