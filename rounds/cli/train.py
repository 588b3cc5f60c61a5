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

    try:
        trainer = GRPOTrainer(config=config, console=console)
    except (ValueError, ImportError, KeyError) as err:
        fail(str(err))
    trainer.train()  # shows the progress bar (config.progress), as the Python API does
    rows = [row for row in trainer.run.metrics() if "reward_mean" in row]
    if rows:
        first, last = rows[0], rows[-1]
        console.print(
            f"Reward {first['reward_mean']:+.3f} -> {last['reward_mean']:+.3f}, "
            f"success {first['success_rate']:.0%} -> {last['success_rate']:.0%} over {len(rows)} steps."
        )
    _held_out_and_curves(trainer.run.path, list(trainer.run.metrics()))
    console.print(
        f"Run directory: [bold]{config.output_dir}[/]. Replay it: [bold]rounds replay {config.output_dir}[/]"
    )


def _held_out_and_curves(run: Path, rows: list[dict[str, Any]]) -> None:
    """Print held-out success before -> after (with intervals) and draw ``curves.png``."""
    from rounds.trainers.curves import before_after, held_out, write_curves

    line = before_after(rows)
    if line:
        console.print(line)
        phases = {r.get("phase"): r for r in rows if "eval/success" in r}
        if "eval_warm_start" in phases:
            after_clone = held_out([phases["eval_warm_start"]])[0]
            console.print(f"(after the warm start alone: {after_clone.text()})")
    if not any("reward_mean" in r for r in rows):
        return
    try:
        path = write_curves(rows, Path(run) / "curves.png")
    except ImportError:
        console.print("No curves.png: matplotlib is missing (pip install 'rounds[report]').")
        return
    console.print(f"Curves: [bold]{path}[/]")
