"""Agents that act in `rounds` envs, and the one loop that runs them.

- :mod:`rounds.agents.base`: the :class:`Agent` protocol, :class:`Action` and :class:`Chat`.
- :mod:`rounds.agents.loop`: the chat loop that turns any env into conversations and
  records :class:`~rounds.records.Episode`s, many episodes at once.
- :mod:`rounds.agents.scripted`: the envs' scripted baselines as agents.
- :mod:`rounds.agents.evaluate`: evaluation runs that write a run directory.
"""

from rounds.agents.base import Action, Agent, BaseAgent, Chat
from rounds.agents.loop import EpisodeSpec, run_episodes
from rounds.agents.registry import make_agent

__all__ = ["Action", "Agent", "BaseAgent", "Chat", "EpisodeSpec", "make_agent", "run_episodes"]
