"""The Typer application and the commands' shared argument handling."""

from __future__ import annotations

from typing import Annotated, Any, NoReturn

import typer
import yaml
from rich.console import Console

app = typer.Typer(
    name="rounds",
    help="Multi-turn environments for LLM agents, and an agentic GRPO trainer.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)

EnvArgs = Annotated[
    list[str] | None,
    typer.Option(
        "--env-arg",
        "-k",
        help="Env keyword argument KEY=VALUE (VALUE is read as YAML: 3, true, [heat, cool]). Repeatable.",
    ),
]
Variant = Annotated[
    str | None, typer.Option("--variant", help="A named variant of the env (see `rounds list`).")
]


def fail(message: str, code: int = 2) -> NoReturn:
    """Print an error that says what to do, and exit."""
    err_console.print(f"[bold red]error:[/] {message}", soft_wrap=True)
    raise typer.Exit(code)


def parse_env_args(pairs: list[str] | None) -> dict[str, Any]:
    """``KEY=VALUE`` pairs with YAML values: ``["max_rooms=1", "task_types=[heat]"]`` ->
    ``{"max_rooms": 1, "task_types": ["heat"]}``."""
    kwargs: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            fail(f"{pair!r} is not KEY=VALUE, e.g. max_rooms=1")
        try:
            kwargs[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as err:
            fail(f"{pair!r}: the value is not valid YAML ({err})")
    return kwargs


def env_kwargs_for(env_id: str, variant: str | None, pairs: list[str] | None) -> dict[str, Any]:
    """The variant's preset overridden by ``--env-arg`` pairs; checks the env id exists."""
    import gymnasium as gym

    import rounds  # registers the built-in envs
    from rounds.registration import env_class, unknown_env_message

    if env_id not in gym.registry:
        fail(unknown_env_message(env_id))
    kwargs: dict[str, Any] = {}
    if variant is not None:
        presets = getattr(env_class(env_id), "variants", {})
        if variant not in presets:
            fail(f"{env_id} has no variant {variant!r}; variants: {', '.join(presets) or 'none'}")
        kwargs.update(presets[variant])
    kwargs.update(parse_env_args(pairs))
    del rounds
    return kwargs


def make_env_or_fail(env_id: str, kwargs: dict[str, Any]) -> Any:
    """``gym.make`` with errors turned into a clear message."""
    import gymnasium as gym

    try:
        return gym.make(env_id, **kwargs)
    except (TypeError, ValueError) as err:
        fail(f"cannot make {env_id} with {kwargs}: {err}")


@app.command("list")
def list_command() -> None:
    """List the registered environments and their variants."""
    from rich.table import Table

    from rounds.registration import list_envs

    table = Table(title="rounds environments", show_lines=True)
    table.add_column("env id", style="bold cyan", no_wrap=True)
    table.add_column("description")
    table.add_column("variants (--variant NAME)")
    for entry in list_envs():
        variants = "\n".join(f"{name}: {kwargs}" for name, kwargs in entry.variants.items())
        table.add_row(entry.id, entry.summary, variants or "-")
    console.print(table)
