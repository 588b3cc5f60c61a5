"""Agents by name: ``rounds eval ENV --agent NAME``."""

from __future__ import annotations

from typing import Any

from rounds.agents.base import BaseAgent
from rounds.agents.scripted import ScriptedAgent

from rounds.text_env import TextEnv


def available_agents(env: TextEnv) -> list[str]:
    """Agent names usable with ``env``: its scripted baselines."""
    return list(env.scripted_policies())


def make_agent(name: str, env: TextEnv, **options: Any) -> BaseAgent:
    """Build the agent called ``name`` for ``env``.

    Raises:
        ValueError: no agent of that name exists for this env (the message lists those that do).
    """
    if name in env.scripted_policies():
        if options:
            raise ValueError(f"scripted agent {name!r} takes no options, got {sorted(options)}")
        return ScriptedAgent(name)
    raise ValueError(
        f"unknown agent {name!r} for {type(env).__name__}; available: "
        f"{', '.join(available_agents(env))}"
    )
