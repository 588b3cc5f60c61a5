"""Agents that act in `rounds` envs, and the one loop that runs them.

- :mod:`rounds.agents.base`: the :class:`Agent` protocol, :class:`Action` and :class:`Chat`.
- :mod:`rounds.agents.loop`: the chat loop that turns any env into conversations and
  records :class:`~rounds.records.Episode`s, many episodes at once (its parts:
  ``env_calls``, ``recording``, ``schedulers``).
- :mod:`rounds.agents.scripted`: the envs' scripted baselines as agents.
- :mod:`rounds.agents.evaluate`: evaluation runs that write a run directory.

The model agents (``HFAgent``, ``VLLMAgent``, ``OpenAIAgent``) are imported on first
use, so importing this package stays light; type checkers see the real classes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rounds.agents.base import Action, Agent, BaseAgent, Chat
from rounds.agents.loop import EpisodeSpec, Rollout, run_episodes
from rounds.agents.registry import make_agent
from rounds.agents.scripted import ScriptedAgent

if TYPE_CHECKING:
    from rounds.agents.hf import HFAgent
    from rounds.agents.openai_agent import OpenAIAgent
    from rounds.agents.vllm_agent import VLLMAgent

__all__ = [
    "Action",
    "Agent",
    "BaseAgent",
    "Chat",
    "EpisodeSpec",
    "HFAgent",
    "OpenAIAgent",
    "Rollout",
    "ScriptedAgent",
    "VLLMAgent",
    "make_agent",
    "run_episodes",
]

_LAZY = {
    "HFAgent": "rounds.agents.hf",
    "OpenAIAgent": "rounds.agents.openai_agent",
    "VLLMAgent": "rounds.agents.vllm_agent",
}


def __getattr__(name: str) -> type[HFAgent] | type[OpenAIAgent] | type[VLLMAgent]:
    if name in _LAZY:
        import importlib

        agent: type[HFAgent] | type[OpenAIAgent] | type[VLLMAgent] = getattr(
            importlib.import_module(_LAZY[name]), name
        )
        return agent
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
