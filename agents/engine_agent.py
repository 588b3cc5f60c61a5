"""Agents that sample token ids from an inference engine: vLLM in process, or a rollout server.

Both keep each episode's token sequence on this side (``ConversationTokens``: the
sampled tokens as they are, the template's rendering of each new observation
tokenized once) and send the engine only token ids, so the tokens and log-probs
the engine returns are exactly what the trainer trains on: no re-tokenisation.
What differs between engines is one call, :meth:`EngineAgent.sample`: a batch of
prompts (token ids) in, each prompt's sampled tokens, their log-probs and why
sampling stopped out.
"""

from __future__ import annotations

import time
from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

from rounds.agents.base import Action, BaseAgent, Chat
from rounds.agents.tokens import ConversationTokens, over_budget


@dataclass
class Sample:
    """One prompt's completion as an engine sampled it."""

    token_ids: list[int]
    """The sampled tokens (with the stop token when sampling stopped on one)."""
    logprobs: list[float]
    """``log π(token)`` of each sampled token."""
    finish_reason: str | None = None
    """``stop``, ``length`` or ``timeout``; ``None`` lets the tokens say (a stop token or not)."""


class EngineAgent(BaseAgent):
    """The shared turn of token-engine agents: build each chat's prompt, end episodes whose
    token budget is spent, sample the rest in one batch, record the actions.

    Subclasses set ``name``, ``model``, :attr:`tokens` (with its ``stop_ids``),
    :attr:`max_new_tokens` and :attr:`max_episode_tokens`, and implement :meth:`sample`.
    """

    batched = True
    failure: Exception | None = None
    """The error of the last :meth:`sample` that failed (the chat loop records it in each
    episode and goes on; a trainer re-raises it, since a dead engine ends the run)."""
    tokens: ConversationTokens
    max_new_tokens: int
    max_episode_tokens: int | None = None
    temperature: float
    top_p: float
    top_k: int
    """``0``: no cut (engines spell it ``-1``: :attr:`engine_top_k`)."""
    seed: int
    _calls: int = 0

    def _set_sampling(
        self,
        tokens: ConversationTokens,
        *,
        max_new_tokens: int,
        max_episode_tokens: int | None,
        temperature: float,
        top_p: float,
        top_k: int,
        seed: int,
    ) -> None:
        """Keep the settings every engine agent samples with (one place for all engines)."""
        self.tokens = tokens
        self.max_new_tokens = max_new_tokens
        self.max_episode_tokens = max_episode_tokens
        self.temperature = temperature
        self.top_p = top_p
        self.top_k = top_k
        self.seed = seed
        self._calls = 0

    @property
    def engine_top_k(self) -> int:
        """:attr:`top_k` as vLLM and SGLang spell "no cut": ``-1``."""
        return self.top_k if self.top_k > 0 else -1

    def row_seeds(self, rows: int) -> list[int]:
        """A seed for each prompt of the next :meth:`sample` call, from the agent's seed, the
        call count and the row: a rerun samples the same, and no two prompts share a stream."""
        call = self._calls
        self._calls += 1
        return [(self.seed * 1_000_003 + call * 10_007 + row) % 2**31 for row in range(rows)]

    @abstractmethod
    def sample(self, prompts: Sequence[list[int]]) -> list[Sample]:
        """Sample one completion for each prompt (token ids), in order."""

    def act(self, chat: Chat) -> Action:
        return self.act_batch([chat])[0]

    def act_batch(self, chats: Sequence[Chat]) -> list[Action]:
        started = time.perf_counter()
        prompts = [self.tokens.prompt(chat, self.max_new_tokens) for chat in chats]
        live, actions = over_budget(prompts, self.max_episode_tokens, self.max_new_tokens)
        if live:
            try:
                samples = self.sample([prompts[i][0] for i in live])
            except Exception as err:
                self.failure = err
                raise
            elapsed = time.perf_counter() - started
            self.generation_seconds += elapsed
            for i, sample in zip(live, samples, strict=True):
                actions[i] = self.tokens.action(
                    chats[i],
                    prompts[i],
                    sample.token_ids,
                    sample.logprobs,
                    latency_s=elapsed,
                    finish_reason=sample.finish_reason,
                )
        return [actions[i] for i in range(len(chats))]
