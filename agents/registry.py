"""Agents by name: ``rounds eval ENV --agent NAME``.

Names: the env's scripted baselines (``expert``, ``bayes``, ``random``, ...), and the
model backends ``hf``, ``vllm``, ``server`` (a rollout server: ``base_url``) and ``openai``
(which take a ``model`` option).
"""

from __future__ import annotations

from typing import Any

from rounds.agents.base import BaseAgent
from rounds.agents.scripted import ScriptedAgent
from rounds.text_env import TextEnv

MODEL_AGENTS = ("hf", "vllm", "server", "openai")


def available_agents(env: TextEnv) -> list[str]:
    """Agent names usable with ``env``: its scripted baselines and the model backends."""
    return [*env.scripted_policies(), *MODEL_AGENTS]


def make_agent(name: str, env: TextEnv, **options: Any) -> BaseAgent:
    """Build the agent called ``name`` for ``env``.

    Raises:
        ValueError: no agent of that name, or options it does not take (the message says which).
    """
    if name in env.scripted_policies():
        if options:
            raise ValueError(f"scripted agent {name!r} takes no options, got {sorted(options)}")
        return ScriptedAgent(name)
    if name in MODEL_AGENTS and "model" not in options:
        raise ValueError(f"agent {name!r} needs a model: --model PATH_OR_ID (or 'tiny')")
    try:
        if name == "hf":
            from rounds.agents.hf import HFAgent

            return HFAgent(**options)
        if name == "openai":
            from rounds.agents.openai_agent import OpenAIAgent

            return OpenAIAgent(**options)
        if name == "vllm":
            from rounds.agents.vllm_agent import VLLMAgent

            return VLLMAgent(**options)
        if name == "server":
            from rounds.agents.server_agent import ServerAgent

            return ServerAgent(**options)
    except TypeError as err:
        raise ValueError(f"agent {name!r}: {err}") from err
    raise ValueError(
        f"unknown agent {name!r} for {type(env).__name__}; available: {', '.join(available_agents(env))}"
    )
