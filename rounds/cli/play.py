"""``rounds play ENV``: a person plays an env in the terminal."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.panel import Panel
from rich.text import Text

from rounds.cli.app import EnvArgs, Variant, app, console, env_kwargs_for, fail, make_env_or_fail

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
    """Play an environment yourself, one action per line.

    Text from the env or the player (observations, instructions, hints) is shown as
    plain text, never as Rich markup: an action such as ``[/]`` is echoed, not parsed.
    """
    kwargs = env_kwargs_for(env_id, variant, env_arg)
    env = make_env_or_fail(env_id, kwargs)
    base: Any = env.unwrapped
    options = {"task_id": task_id} if task_id else None
    try:
        observation, info = env.reset(seed=seed, options=options)
    except (ValueError, KeyError) as err:
        env.close()
        reason = err.args[0] if isinstance(err, KeyError) and err.args else err
        fail(f"{reason}; pick a task with --seed N or a valid --task-id")
    console.print(Panel(Text(base.system_prompt), title="instructions", border_style="dim"))
    console.print(Text(HELP, style="dim"))
    console.print(
        Panel(
            Text(observation),
            title=escape(f"{env_id}  task {base.task_id}"),
            border_style="cyan",
        )
    )
    total = 0.0
    while True:
        line = _read("[bold green]> [/]")
        if line is None or line.strip() in (":quit", ":q"):
            console.print("[dim]Stopped.[/]")
            break
        command = line.strip()
        if command == ":help":
            console.print(Panel(Text(base.system_prompt), title="instructions"))
            continue
        if command == ":commands":
            commands = info.get("admissible_commands")
            console.print(
                Text(", ".join(commands) if commands else "This env does not list its commands.")
            )
            continue
        if command == ":hint":
            policies = base.scripted_policies()
            expert = policies.get("expert") or policies.get("bayes")
            if expert is None:
                console.print("This env has no expert to ask.")
            else:
                import numpy as np

                hint = str(expert(base, np.random.default_rng(0)))
                console.print(Text.assemble(("hint: ", "yellow"), hint))
            continue
        try:
            observation, reward, terminated, truncated, info = env.step(line)
        except Exception as err:  # the env contract says never; a bug report beats a traceback
            env.close()
            fail(
                f"{env_id} raised {type(err).__name__} on that action: {str(err)[:300]}. Envs "
                "must answer any text with an observation; please report this bug with the "
                f"action and {f'--task-id {base.task_id}' if base.task_id else '--seed'}.",
                code=1,
            )
        total += float(reward)
        components = ", ".join(f"{k}={v:+.3g}" for k, v in info["reward_components"].items() if v)
        style = "red" if info.get("invalid_action") else "cyan"
        subtitle = f"reward {float(reward):+.3g}" + (f" ({components})" if components else "")
        console.print(
            Panel(
                Text(observation), title=f"turn {base.turn}", subtitle=subtitle, border_style=style
            )
        )
        if terminated or truncated:
            metrics = ", ".join(f"{k}={v:g}" for k, v in info.get("metrics", {}).items())
            how = "finished" if terminated else "truncated"
            console.print(
                f"[bold]Episode {how}[/]: outcome {info.get('outcome', 0.0):g}, "
                f"total reward {total:+.3g}. {escape(metrics)}"
            )
            break
    env.close()
