"""The agent protocol: ``act(chat) -> Action``, batched as ``act_batch(chats)``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from rounds.text_env import TextEnv


@dataclass
class Action:
    """An agent's reply for one turn.

    Model agents also return the token ids they sampled and their log-probs: the
    trainer trains on exactly these tokens (no re-tokenisation of ``text``).
    """

    text: str
    token_ids: list[int] | None = None
    """The completion tokens as sampled (ending with the end-of-turn token)."""
    logprobs: list[float] | None = None
    """``log π(token)`` of each completion token at sampling time."""
    prompt_ids: list[int] | None = None
    """The tokens added to the conversation before this completion: the whole prompt on the
    first turn, then the template's rendering of the new observation. Concatenating
    ``prompt_ids + token_ids`` over the turns gives the episode's token sequence."""
    sampled_mask: list[int] | None = None
    """1 for each of ``token_ids`` the policy sampled, 0 for one the agent appended (an
    end-of-turn token after a reply cut at the length limit)."""
    context_reset: bool = False
    """The prompt was rebuilt from truncated messages (the conversation outgrew the context)."""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    """Tool calls in OpenAI's format, when the agent called a tool."""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    finish_reason: str | None = None
    error: str | None = None
    """Set when the agent could not act (e.g. the API failed after retries); the episode ends."""
    end_reason: str | None = None
    """Set when the agent ends the episode on purpose (e.g. its token budget is spent)."""


@dataclass
class Chat:
    """One episode's conversation, as an agent sees it.

    ``messages`` are OpenAI-style dicts (``role``/``content``); the first is the
    system prompt. ``env`` (the unwrapped env) and ``rng`` serve scripted agents,
    which act from the true state; model agents read only the messages.
    """

    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]]
    env: TextEnv
    rng: np.random.Generator
    info: dict[str, Any] = field(default_factory=dict)
    """The env's latest info dict (e.g. ``admissible_commands``)."""
    state: dict[str, Any] = field(default_factory=dict)
    """The agent's own per-episode state (e.g. the token sequence so far)."""


@runtime_checkable
class Agent(Protocol):
    """Anything that can act in a :class:`Chat`.

    ``batched`` tells the chat loop how to drive the agent: a batched agent (a local
    model) gets one ``act_batch`` call per round for all live episodes; any other agent
    runs each episode on its own worker, so a slow reply holds up no one. ``close``
    releases what the agent holds (HTTP clients, engines) when a run is done with it.
    """

    name: str
    model: str | None
    batched: bool

    def act(self, chat: Chat) -> Action:
        """The next action in one conversation."""
        ...

    def act_batch(self, chats: Sequence[Chat]) -> list[Action]:
        """The next action in each of several conversations (batched where the backend can)."""
        ...

    def close(self) -> None:
        """Release the agent's resources."""
        ...


class BaseAgent(ABC):
    """Convenience base of :class:`Agent`: not batched, ``act_batch`` calls ``act`` in turn
    (batched backends override both), ``close`` releases nothing."""

    name: str = "agent"
    model: str | None = None
    batched: bool = False
    generation_seconds: float = 0.0
    """Wall-clock seconds spent generating so far (model agents count it; a trainer reports
    it apart from env time)."""

    @abstractmethod
    def act(self, chat: Chat) -> Action:
        """The next action in one conversation."""

    def act_batch(self, chats: Sequence[Chat]) -> list[Action]:
        return [self.act(chat) for chat in chats]

    def close(self) -> None:
        """Release the agent's resources (HTTP clients, engines)."""
        return None
