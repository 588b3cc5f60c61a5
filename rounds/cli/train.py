"""``rounds train``: agentic GRPO from a YAML config or flags."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from rounds.cli.app import app, console, fail, parse_env_args


@app.command("train")
def train_command(
    config_path: Annotated[
        Path | None, typer.Argument(metavar="CONFIG", help="A YAML file of GRPOConfig settings.")
    ] = None,
    env: Annotated[str | None, typer.Option(help="Env id, e.g. rounds/DiagGym-v0.")] = None,
    model: Annotated[
        str | None, typer.Option(help="Policy: a local path, a hub id, or 'tiny'.")
    ] = None,
    steps: Annotated[int | None, typer.Option(help="Training steps.")] = None,
    out: Annotated[Path | None, typer.Option(help="Run directory.")] = None,
    setting: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            "-s",
            help="Any GRPOConfig setting KEY=VALUE (YAML value), e.g. -s group_size=8.",
        ),
    ] = None,
) -> None:
    """Train a policy with agentic multi-turn GRPO; writes a run directory for `rounds replay`."""
    from pydantic import ValidationError
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from rounds.trainers import GRPOConfig, GRPOTrainer

    overrides: dict[str, Any] = parse_env_args(setting)
    for key, value in (
        ("env_id", env),
        ("model", model),
        ("steps", steps),
        ("output_dir", str(out) if out else None),
    ):
        if value is not None:
            overrides[key] = value
    try:
        if config_path is not None:
            if not config_path.exists():
                fail(f"config file {config_path} does not exist")
            config = GRPOConfig.from_yaml(config_path, **overrides)
        else:
            config = GRPOConfig(**overrides)
    except (ValidationError, ValueError) as err:
        fail(f"bad training config: {err}")

    with Progress(
        TextColumn("[bold]GRPO[/] step"),
        MofNCompleteColumn(),
        BarColumn(),
        TextColumn(
            "reward {task.fields[reward]}  success {task.fields[success]}  loss {task.fields[loss]}  {task.fields[speed]}"
        ),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    ) as progress:
        bar = progress.add_task(
            "train", total=config.steps, reward="-", success="-", loss="-", speed=""
        )

        def on_step(metrics: dict[str, Any]) -> None:
            progress.update(
                bar,
                completed=metrics["step"] + 1,
                reward=f"{metrics['reward_mean']:+.3f}",
                success=f"{metrics['success_rate']:.0%}",
                loss=f"{metrics['loss']:+.4f}",
                speed=f"{metrics['tokens_per_s']:.0f} tok/s",
            )

        def on_warm_start(epoch: int, loss: float) -> None:
            assert config.warm_start is not None
            console.print(
                f"warm start: epoch {epoch + 1}/{config.warm_start.epochs}, cloning loss {loss:.3f}"
            )

        if config.warm_start is not None:
            console.print(
                f"Warm start: cloning the env's '{config.warm_start.policy}' baseline on "
                f"{config.warm_start.episodes} episodes before GRPO."
            )
        try:
            trainer = GRPOTrainer(config=config, on_step=on_step, on_warm_start=on_warm_start)
        except (ValueError, ImportError, KeyError) as err:
            fail(str(err))
        progress.update(bar, completed=trainer.start_step)
        if trainer.start_step:
            console.print(
                f"Resuming from step {trainer.start_step} (checkpoint in {trainer.checkpoints})."
            )
        trainer.train()
    rows = [row for row in trainer.run.metrics() if "reward_mean" in row]
    if rows:
        first, last = rows[0], rows[-1]
        console.print(
            f"Reward {first['reward_mean']:+.3f} -> {last['reward_mean']:+.3f}, "
            f"success {first['success_rate']:.0%} -> {last['success_rate']:.0%} over {len(rows)} steps."
        )
    console.print(
        f"Run directory: [bold]{config.output_dir}[/]. Replay it: [bold]rounds replay {config.output_dir}[/]"
    )
