"""Train on ``rounds`` envs with TRL: an env whose actions are tool calls as an ``environment_factory``.

TRL's ``GRPOTrainer`` (1.16, experimental) trains multi-turn through
``environment_factory``: a zero-argument callable returning an object with a
``reset(**row)`` that returns the first observation, one public method per tool
(TRL builds each tool's JSON schema from the method's name, typed signature and
Google-style docstring, and calls it with the model's arguments), and an
optional ``get_reward()`` scored once per finished rollout. :func:`environment_factory`
builds such a class from any ``rounds`` env's ``tools``: each call becomes one
``env.step`` with the call as JSON text (the action format every tool env parses),
and the method returns the env's observation. ``get_reward`` is the episode's
return, the sum of the env's turn rewards (what ``Episode.total_reward`` records),
so TRL learns from one reward per rollout; ``rounds``' own trainer can use the
turn-level rewards as well.

Nothing here imports TRL: the classes are plain Python. TRL itself is the
``rounds[trl]`` extra. :func:`task_rows` gives the dataset rows that make the G
rollouts of a GRPO group play the same task.
"""

from __future__ import annotations

import inspect
import json
import keyword
import random
import re
from collections.abc import Callable, Mapping, Sequence
from types import GenericAlias
from typing import Any, ClassVar, Literal

import gymnasium as gym

from rounds.registration import make

#: Methods TRL treats specially: a tool cannot take these names.
RESERVED_NAMES = ("reset", "get_reward")

_JSON_TYPES: dict[str, Any] = {
    "string": str,
    "integer": int,
    "number": float,
    "boolean": bool,
    "array": list,
    "object": dict,
    "null": type(None),
}


class ToolEnvironment:
    """One rollout's env, with the env's tools as methods (the base of :func:`environment_factory`'s classes).

    TRL builds one instance per concurrent rollout and calls ``reset`` before each
    rollout, then the tool methods the model calls, then ``get_reward``. A call after
    the episode ended is not applied: it returns a message saying so.
    """

    env_id: ClassVar[str] = ""
    env_kwargs: ClassVar[Mapping[str, Any]] = {}
    variant: ClassVar[str | None] = None
    tool_specs: ClassVar[tuple[dict[str, Any], ...]] = ()

    def __init__(self) -> None:
        if not self.env_id:
            raise TypeError(
                "ToolEnvironment is a base class: build one for an env with "
                "rounds.integrations.trl.environment_factory(env_id)."
            )
        self._env = make(self.env_id, variant=self.variant, **dict(self.env_kwargs))
        self._observation = ""
        self._rewards: list[float] = []
        self._infos: list[dict[str, Any]] = []
        self._terminated = False
        self._truncated = False
        self._started = False

    # ------------------------------------------------------------ TRL's contract

    def reset(self, task_id: str | None = None, seed: int | None = None, **row: Any) -> str:
        """Start an episode and return its first observation.

        TRL passes the dataset row as keyword arguments: a ``task_id`` column picks the
        task (as ``options={"task_id": ...}``) and a ``seed`` column seeds the reset; other
        columns (``prompt``, ...) are ignored. Rows from :func:`task_rows` carry the task id,
        so a GRPO group's rollouts all play the same task.
        """
        options = {"task_id": str(task_id)} if task_id is not None else None
        observation, _info = self._env.reset(
            seed=None if seed is None else int(seed), options=options
        )
        self._observation = str(observation)
        self._rewards, self._infos = [], []
        self._terminated = self._truncated = False
        self._started = True
        return self._observation

    def get_reward(self) -> float:
        """The episode's return: the sum of its turn rewards (0.0 before any call)."""
        return float(sum(self._rewards))

    # ------------------------------------------------------------ the episode so far

    @property
    def env(self) -> gym.Env[Any, Any]:
        """The wrapped ``rounds`` env (``env.unwrapped`` for its state)."""
        return self._env

    @property
    def observation(self) -> str:
        """The last observation returned (by ``reset`` or a tool call)."""
        return self._observation

    @property
    def rewards(self) -> list[float]:
        """The turn-level rewards so far, one per applied tool call."""
        return list(self._rewards)

    @property
    def infos(self) -> list[dict[str, Any]]:
        """The env's ``info`` of each applied call (reward components, metrics on the last)."""
        return list(self._infos)

    @property
    def done(self) -> bool:
        """Whether the episode ended (terminated or truncated)."""
        return self._terminated or self._truncated

    @property
    def terminated(self) -> bool:
        return self._terminated

    @property
    def truncated(self) -> bool:
        return self._truncated

    def _call_tool(self, name: str, arguments: dict[str, Any]) -> str:
        """Apply one tool call as one env step and return the env's observation."""
        if not self._started:
            raise gym.error.ResetNeeded("Call reset() before calling a tool.")
        if self.done:
            why = "a final answer was given" if self._terminated else "the turn limit was reached"
            return f"The episode is over ({why}); the {name} call was not applied."
        action = json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False)
        observation, reward, terminated, truncated, info = self._env.step(action)
        self._observation = str(observation)
        self._rewards.append(float(reward))
        self._infos.append(dict(info))
        self._terminated, self._truncated = bool(terminated), bool(truncated)
        return self._observation


def environment_factory(
    env_id: str, *, variant: str | None = None, **env_kwargs: Any
) -> type[ToolEnvironment]:
    """A TRL ``environment_factory`` for ``env_id``: a class with one method per env tool.

    The class takes no arguments (TRL calls the factory with none); each instance
    makes its own env with ``rounds.make(env_id, variant=variant, **env_kwargs)``.
    Raises ``ValueError`` when the env has no tools, or a tool or parameter name
    cannot be a Python method or argument name.
    """
    probe = make(env_id, variant=variant, **env_kwargs)
    try:
        specs = [_function_spec(spec) for spec in getattr(probe.unwrapped, "tools", [])]
    finally:
        probe.close()
    if not specs:
        raise ValueError(
            f"{env_id} has no tools (env.unwrapped.tools is empty): TRL's environment_factory "
            "calls an env through its tools; use an env whose actions are tool calls."
        )
    namespace: dict[str, Any] = {
        "env_id": env_id,
        "env_kwargs": dict(env_kwargs),
        "variant": variant,
        "tool_specs": tuple(specs),
        "__module__": __name__,
        "__doc__": f"{env_id} for TRL's GRPOTrainer: its tools {[s['name'] for s in specs]} as methods.",
    }
    for spec in specs:
        namespace[spec["name"]] = tool_method(spec)
    return type(_class_name(env_id), (ToolEnvironment,), namespace)


def tool_method(spec: Mapping[str, Any]) -> Callable[..., str]:
    """A method for one tool (``{"name", "description", "parameters"}``): its signature, type
    hints and docstring carry the tool's schema, as ``transformers.utils.get_json_schema`` reads it.

    The method forwards whatever arguments it gets to the env (which judges them and
    answers a bad call with an observation), so the model's mistakes reach the env
    instead of failing in Python.
    """
    name = spec["name"]
    _check_name(name, "tool")
    parameters = spec.get("parameters") or {}
    properties: dict[str, Any] = dict(parameters.get("properties") or {})
    required = set(parameters.get("required") or [])
    signature_params = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    annotations: dict[str, Any] = {}
    arg_docs: list[str] = []
    # Required parameters first: Python needs them before those with defaults.
    ordered = sorted(properties, key=lambda p: p not in required)
    for param in ordered:
        _check_name(param, f"parameter of tool {name!r}")
        schema = properties[param] if isinstance(properties[param], dict) else {}
        hint = json_schema_type(schema)
        if param in required:
            default: Any = inspect.Parameter.empty
        else:
            hint, default = hint | None, None
        annotations[param] = hint
        signature_params.append(
            inspect.Parameter(
                param, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=hint
            )
        )
        description = _one_line(str(schema.get("description") or f"The {param}."))
        arg_docs.append(f"    {param}: {description}")
    annotations["return"] = str
    order = list(ordered)

    def call(self: ToolEnvironment, *args: Any, **kwargs: Any) -> str:
        arguments = dict(zip(order, args, strict=False))
        arguments.update({k: v for k, v in kwargs.items() if v is not None or k in required})
        return self._call_tool(name, arguments)

    description = _one_line(str(spec.get("description") or f"Call the {name} tool."))
    doc = description
    if arg_docs:
        doc += "\n\nArgs:\n" + "\n".join(arg_docs)
    doc += "\n\nReturns:\n    The env's observation after the call."
    call.__name__ = call.__qualname__ = name
    call.__doc__ = doc
    call.__annotations__ = annotations
    call.__signature__ = inspect.Signature(signature_params, return_annotation=str)  # type: ignore[attr-defined]
    return call


def json_schema_type(schema: Mapping[str, Any]) -> Any:
    """The Python type hint of a JSON-schema property (``enum`` becomes ``Literal``), which
    ``transformers``' schema builder turns back into the same JSON type."""
    enum = schema.get("enum")
    if isinstance(enum, list) and enum and all(_is_scalar(v) for v in enum):
        # Built at run time from the spec's values: a static checker cannot see them.
        return Literal.__getitem__(tuple(enum))
    kind = schema.get("type", "string")
    kinds = kind if isinstance(kind, list) else [kind]
    hints: list[Any] = []
    for item in kinds:
        if item == "array":
            items = schema.get("items")
            hints.append(
                GenericAlias(list, (json_schema_type(items),)) if isinstance(items, dict) else list
            )
        else:
            hints.append(_JSON_TYPES.get(str(item), str))
    hint: Any = hints[0]
    for other in hints[1:]:
        hint = hint | other
    return hint


def task_rows(
    env_id: str,
    count: int,
    *,
    split: str | None = None,
    seed: int = 0,
    variant: str | None = None,
    **env_kwargs: Any,
) -> list[dict[str, Any]]:
    """``count`` dataset rows for TRL (``Dataset.from_list(rows)``): the env's system prompt as
    the conversation, and a ``task_id`` that :meth:`ToolEnvironment.reset` plays.

    Tasks are drawn from ``split`` (default: the env's own) in a seeded order, cycling when
    ``count`` is larger. TRL repeats each row for the G rollouts of its group, so a group
    shares one task, as GRPO needs.
    """
    env = make(env_id, variant=variant, **env_kwargs)
    try:
        unwrapped = env.unwrapped
        system = str(unwrapped.system_prompt)  # type: ignore[attr-defined]
        ids: Sequence[str] = list(unwrapped.task_ids(split))  # type: ignore[attr-defined]
    finally:
        env.close()
    if not ids:
        raise ValueError(f"{env_id} has no tasks in split {split!r}")
    order = list(ids)
    random.Random(seed).shuffle(order)
    prompt = [{"role": "system", "content": system}, {"role": "user", "content": ""}]
    return [
        {"prompt": [dict(m) for m in prompt], "task_id": order[i % len(order)]}
        for i in range(count)
    ]


def use_chatml_tool_parser(tokenizer: Any) -> Any:
    """Let TRL read tool calls from a ChatML template it does not recognise (``rounds.models.tiny()``).

    TRL parses a reply's ``<tool_call>{...}</tool_call>`` only for chat templates it knows
    (Qwen, Llama, ...), through the tokenizer's ``response_template``. The embedded tiny
    model writes Qwen's tags, so it gets TRL's Qwen parser. Needs TRL (``rounds[trl]``).
    """
    from trl.chat_template_utils import qwen3_template

    tokenizer.response_template = qwen3_template
    return tokenizer


def _function_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    function = spec.get("function") if spec.get("type") == "function" else spec
    if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
        raise ValueError(f"not a function tool spec: {json.dumps(spec)[:200]}")
    return dict(function)


def _check_name(name: str, what: str) -> None:
    if not name.isidentifier() or keyword.iskeyword(name):
        raise ValueError(f"{what} {name!r} is not a Python identifier, so it cannot be a method")
    if what == "tool" and (
        name.startswith("_") or name in RESERVED_NAMES or hasattr(ToolEnvironment, name)
    ):
        raise ValueError(
            f"tool {name!r} clashes with TRL's contract or ToolEnvironment's own members "
            f"({', '.join(RESERVED_NAMES)}, names starting with '_', "
            "env, observation, rewards, infos, done, terminated, truncated)"
        )


def _class_name(env_id: str) -> str:
    parts = re.split(r"[^0-9A-Za-z]+", env_id.rsplit("/", 1)[-1])
    name = "".join(part[:1].upper() + part[1:] for part in parts if part) + "Environment"
    return name if name[0].isalpha() else "Env" + name


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)
