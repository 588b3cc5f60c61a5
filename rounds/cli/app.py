"""The Typer application and the commands' shared argument handling."""

from __future__ import annotations

import inspect
import re
import typing
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
        # Typer renders help as Rich markup: "\\[" keeps the YAML list's bracket literal.
        help="Env keyword argument KEY=VALUE (VALUE is read as YAML: 3, true, \\[heat, cool]). Repeatable.",
    ),
]
Variant = Annotated[
    str | None, typer.Option("--variant", help="A named variant of the env (see `rounds list`).")
]


def fail(message: str, code: int = 2) -> NoReturn:
    """Print an error that says what to do, and exit.

    The message is printed as plain text: brackets in it (a list, a type such as
    ``Sequence[str]``) are not Rich markup.
    """
    from rich.markup import escape

    err_console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
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


def _type_name(hint: Any) -> str:
    """A type as a user reads it: ``int``, ``Sequence[str] | None``."""
    if isinstance(hint, type):
        return hint.__name__
    return re.sub(r"\b(typing|collections\.abc)\.", "", str(hint))


def env_options(creator: Any) -> tuple[dict[str, Any], bool]:
    """The keyword options an env class (or creator function) takes, with their type hints
    (``Any`` where none can be resolved), and whether that list is complete.

    An ``__init__`` that forwards ``**kwargs`` adds its base class's options; the list is
    complete once an ``__init__`` without ``**kwargs`` is reached.
    """
    functions = (
        [k.__dict__["__init__"] for k in creator.__mro__ if "__init__" in k.__dict__]
        if isinstance(creator, type)
        else [creator]
    )
    options: dict[str, Any] = {}
    for function in functions:
        try:
            parameters = inspect.signature(function).parameters
        except (TypeError, ValueError):
            return options, False
        try:
            hints = typing.get_type_hints(function)
        except Exception:  # unresolvable annotations: check names only
            hints = {}
        forwards = False
        for name, parameter in list(parameters.items())[1 if isinstance(creator, type) else 0 :]:
            if parameter.kind is inspect.Parameter.VAR_KEYWORD:
                forwards = True
            elif parameter.kind is not inspect.Parameter.VAR_POSITIONAL:
                options.setdefault(name, hints.get(name, Any))
        if not forwards:
            return options, True
    return options, False


def check_env_kwargs(env_id: str, kwargs: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """``-k`` options for ``env_id`` checked against the env's type hints (pydantic, lax):
    the values converted to those types (``'5'`` for an ``int`` becomes 5, so the env never
    sees text where it expects a number), and what is wrong (unknown names, values of
    the wrong type), each saying what to pass."""
    from pydantic import TypeAdapter, ValidationError

    from rounds.registration import env_class

    options, complete = env_options(env_class(env_id))
    checked = dict(kwargs)
    problems = []
    for name, value in kwargs.items():
        if name not in options:
            if complete:
                problems.append(
                    f"-k {name}: {env_id} has no option {name!r}; its options: {', '.join(sorted(options))}"
                )
            continue
        hint = options[name]
        if hint is Any:
            continue
        try:
            adapter: TypeAdapter[Any] = TypeAdapter(hint)
        except Exception:  # a type pydantic cannot check (e.g. an arbitrary class)
            continue
        try:
            checked[name] = adapter.validate_python(value)
        except ValidationError:
            problems.append(
                f"-k {name}: {name} takes {_type_name(hint)}, got {value!r} "
                f"({type(value).__name__}); VALUE is read as YAML (3, 0.5, true, [heat, cool], 'text')"
            )
    return checked, problems


def env_kwargs_for(env_id: str, variant: str | None, pairs: list[str] | None) -> dict[str, Any]:
    """The variant's preset overridden by ``--env-arg`` pairs; checks the env id exists and
    that every pair names an option of the env with a value of its type."""
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
    given, problems = check_env_kwargs(env_id, parse_env_args(pairs))
    if problems:
        fail("\n".join(problems))
    kwargs.update(given)
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
    from rich.markup import escape
    from rich.table import Table

    from rounds.registration import list_envs

    try:
        entries = list_envs()
    except ImportError as err:
        fail(
            f"an env's module does not import ({err}); install its extra (pip install "
            "'rounds[all]') or fix the env's registration"
        )
    table = Table(title="rounds environments", show_lines=True)
    table.add_column("env id", style="bold cyan", no_wrap=True)
    table.add_column("description")
    table.add_column("variants (--variant NAME)")
    for entry in entries:
        variants = "\n".join(f"{name}: {kwargs}" for name, kwargs in entry.variants.items())
        table.add_row(escape(entry.id), escape(entry.summary), escape(variants) or "-")
    console.print(table)
