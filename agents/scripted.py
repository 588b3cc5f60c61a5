"""The envs' scripted baselines (``expert``, ``random``, ...) as agents."""

from __future__ import annotations

import time

from rounds.agents.base import Action, BaseAgent, Chat


class ScriptedAgent(BaseAgent):
    """Acts with the env's scripted policy ``name`` (see ``TextEnv.scripted_policies``)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.model = None

    def act(self, chat: Chat) -> Action:
        policies = chat.env.scripted_policies()
        if self.name not in policies:
            raise KeyError(
                f"{type(chat.env).__name__} has no scripted agent {self.name!r}; "
                f"it has: {', '.join(policies) or 'none'}"
            )
        start = time.perf_counter()
        # In the env's choice action mode, the number of the command (TextEnv.present_action).
        text = chat.env.present_action(policies[self.name](chat.env, chat.rng))
        return Action(text=text, latency_s=time.perf_counter() - start)
