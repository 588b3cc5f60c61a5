"""``rounds play ENV``: a person plays an env in the terminal."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.panel import Panel

from rounds.cli.app import EnvArgs, Variant, app, console, env_kwargs_for, make_env_or_fail

HELP = (
    "Type your action and press Enter. Special inputs: ':help' shows the instructions, "
    "':commands' lists valid commands (where the env gives them), ':hint' asks the expert, "
    "':quit' (or Ctrl-D) stops."
)


def _read(prompt: str) -> str | None:
    try:
        return console.input(prompt)
    except (EOFError, KeyboardInterrupt):
        return None


@app.command("play")
def play_command(
    env_id: Annotated[str, typer.Argument(help="Env id, e.g. rounds/Household-v0.")],
    seed: Annotated[int | None, typer.Option(help="Reset seed (picks the task).")] = None,
    task_id: Annotated[str | None, typer.Option("--task-id", help="Play this task.")] = None,
    variant: Variant = None,
    env_arg: EnvArgs = None,
) -> None:
    """Play an environment yourself, one action per line."""
    kwargs = env_kwargs_for(env_id, variant, env_arg)
    env = make_env_or_fail(env_id, kwargs)
    base: Any = env.unwrapped
    options = {"task_id": task_id} if task_id else None
    try:
        observation, info = env.reset(seed=seed, options=options)
    except ValueError as err:
        env.close()
        from rounds.cli.app import fail

        fail(str(err))
    console.print(Panel(base.system_prompt, title="instructions", border_style="dim"))
    console.print(f"[dim]{HELP}[/]")
    console.print(Panel(observation, title=f"{env_id}  task {base.task_id}", border_style="cyan"))
    total = 0.0
    while True:
        line = _read("[bold green]> [/]")
        if line is None or line.strip() in (":quit", ":q"):
            console.print("[dim]Stopped.[/]")
            break
        command = line.strip()
        if command == ":help":
            console.print(Panel(base.system_prompt, title="instructions"))
            continue
        if command == ":commands":
            commands = info.get("admissible_commands")
            console.print(
                ", ".join(commands) if commands else "This env does not list its commands."
            )
            continue
        if command == ":hint":
            policies = base.scripted_policies()
            expert = policies.get("expert") or policies.get("bayes")
            if expert is None:
                console.print("This env has no expert to ask.")
            else:
                import numpy as np

                console.print(f"[yellow]hint:[/] {expert(base, np.random.default_rng(0))}")
            continue
        observation, reward, terminated, truncated, info = env.step(line)
        total += float(reward)
        components = ", ".join(f"{k}={v:+.3g}" for k, v in info["reward_components"].items() if v)
        style = "red" if info.get("invalid_action") else "cyan"
        subtitle = f"reward {float(reward):+.3g}" + (f" ({components})" if components else "")
        console.print(
            Panel(observation, title=f"turn {base.turn}", subtitle=subtitle, border_style=style)
        )
        if terminated or truncated:
            metrics = ", ".join(f"{k}={v:g}" for k, v in info.get("metrics", {}).items())
            how = "finished" if terminated else "truncated"
            console.print(
                f"[bold]Episode {how}[/]: outcome {info.get('outcome', 0.0):g}, "
                f"total reward {total:+.3g}. {metrics}"
            )
            break
    env.close()
