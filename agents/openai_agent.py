"""``openai``: any OpenAI-compatible chat-completions endpoint (OpenAI, vLLM's server, ...)."""

from __future__ import annotations

import os
import time
from typing import Any

from rounds.agents.base import Action, BaseAgent, Chat
from rounds.agents.chat import fit_messages, tool_call_text
from rounds.models.openai_client import APIError, OpenAIClient


class OpenAIAgent(BaseAgent):
    """Chat completions over HTTP, with retries, timeouts and rate-limit backoff.

    A request that still fails after its retries becomes an :class:`Action` with
    ``error`` set: the chat loop ends that episode as truncated and the run goes on.

    Args:
        model: the served model's name.
        base_url: default ``$OPENAI_BASE_URL`` or ``https://api.openai.com/v1``.
        api_key_env: the environment variable holding the key.
        temperature, max_tokens: sampling settings sent with each request.
        max_context_tokens: conversations are cut (oldest observations first) to about this size.
        use_tools: send the env's tool specs (``tools=``) when it has any.
        timeout_s, max_retries, backoff_s: see :class:`~rounds.models.openai_client.OpenAIClient`.
        params: further request fields (``top_p``, ``seed``, ...).
    """

    batched = False

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        temperature: float = 0.0,
        max_tokens: int = 1024,
        max_context_tokens: int = 100_000,
        use_tools: bool = True,
        timeout_s: float = 60.0,
        max_retries: int = 4,
        backoff_s: float = 1.0,
        **params: Any,
    ) -> None:
        self.name = "openai"
        self.model = model
        url = base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"
        self.client = OpenAIClient(
            url,
            api_key_env=api_key_env,
            timeout_s=timeout_s,
            max_retries=max_retries,
            backoff_s=backoff_s,
        )
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.max_context_tokens = max_context_tokens
        self.use_tools = use_tools
        self.params = params

    def act(self, chat: Chat) -> Action:
        messages = fit_messages(chat.messages, self.max_context_tokens)
        extra: dict[str, Any] = dict(self.params)
        if self.use_tools and chat.tools:
            extra["tools"] = chat.tools
        started = time.perf_counter()
        try:
            reply = self.client.chat(
                self.model,
                messages,
                temperature=self.temperature,
                max_tokens=self.max_tokens,
                **extra,
            )
        except APIError as err:
            return Action(text="", error=str(err), latency_s=time.perf_counter() - started)
        text = reply.text
        if reply.tool_calls:
            call = tool_call_text(reply.tool_calls[0])
            text = f"{text}\n{call}".strip() if text else call
        return Action(
            text=text,
            tool_calls=reply.tool_calls,
            prompt_tokens=reply.prompt_tokens,
            completion_tokens=reply.completion_tokens,
            latency_s=time.perf_counter() - started,
            finish_reason=reply.finish_reason,
        )

    def close(self) -> None:
        self.client.close()
