"""``openai``: any OpenAI-compatible chat-completions endpoint (OpenAI, vLLM's server, ...)."""

from __future__ import annotations

import base64
import os
import time
from typing import Any

from rounds.agents.base import Action, BaseAgent, Chat
from rounds.agents.chat import TRUNCATION_MARKER, fit_messages, tool_call_text
from rounds.models.openai_client import APIError, OpenAIClient

#: A rough token cost of one screenshot in the context budget (a 360x640 PNG at OpenAI's
#: high detail is 2 tiles of 170 tokens plus 85; other servers count differently).
IMAGE_TOKENS = 500


def remember_screenshot(chat: Chat) -> None:
    """Keep the PNG an env put in ``info["screenshot"]`` with the observation it belongs to.

    The chat loop updates ``chat.info`` after each step; the screenshot belongs to
    the last message (the observation). They are kept by message index in
    ``chat.state["screenshots"]``, so older turns keep their images.
    """
    png = chat.info.get("screenshot")
    if not isinstance(png, bytes | bytearray) or not chat.messages:
        return
    if chat.messages[-1].get("role") not in ("user", "tool"):
        return
    shots: dict[int, bytes] = chat.state.setdefault("screenshots", {})
    shots[len(chat.messages) - 1] = bytes(png)


def with_images(
    messages: list[dict[str, Any]], screenshots: dict[int, bytes], max_images: int
) -> list[dict[str, Any]]:
    """The messages with the latest ``max_images`` screenshots attached as image content parts.

    A user message becomes ``[{"type": "text"}, {"type": "image_url"}]`` content; a
    tool result cannot carry an image in the chat-completions format, so the image
    follows it as a user message. Observations cut from the context lose their image.
    """
    kept = sorted(i for i in screenshots if i < len(messages))[-max_images:] if max_images else []
    out: list[dict[str, Any]] = []
    for index, message in enumerate(messages):
        if index not in kept or str(message.get("content", "")).startswith(TRUNCATION_MARKER):
            out.append(message)
            continue
        url = "data:image/png;base64," + base64.b64encode(screenshots[index]).decode("ascii")
        image = {"type": "image_url", "image_url": {"url": url}}
        if message.get("role") == "user":
            text = {"type": "text", "text": str(message.get("content") or "")}
            out.append({**message, "content": [text, image]})
        else:
            out.append(message)
            caption = {"type": "text", "text": "Screenshot of the screen:"}
            out.append({"role": "user", "content": [caption, image]})
    return out


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
        max_images: screenshots an env returns (``info["screenshot"]``, e.g. ``rounds/GUI-v0``
            with ``observation="screenshot"``) are sent as image content parts, the latest
            this many; 0 sends none.
        timeout_s, max_retries, backoff_s: see :class:`~rounds.models.openai_client.OpenAIClient`.
        params: further request fields (``top_p``, ``seed``, ...).
    """

    batched = False
    model: str

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
        max_images: int = 1,
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
        self.max_images = max_images
        self.params = params

    def act(self, chat: Chat) -> Action:
        remember_screenshot(chat)
        screenshots: dict[int, bytes] = chat.state.get("screenshots", {})
        images = min(self.max_images, len(screenshots))
        budget = max(1, self.max_context_tokens - IMAGE_TOKENS * images)
        messages = with_images(fit_messages(chat.messages, budget), screenshots, images)
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
