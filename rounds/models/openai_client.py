"""A small client for OpenAI-compatible HTTP APIs (``/chat/completions`` and ``/completions``).

Used by the ``openai`` agent and the LLM world model, against OpenAI, vLLM's
server, or any compatible endpoint. Transient failures (connection errors,
timeouts, HTTP 408/409/429/5xx, a body that is not the expected JSON) are retried
with exponential backoff, honouring ``Retry-After``; other errors fail at once
with the server's message.
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}


class APIError(Exception):
    """A request failed for good (after retries, or with a non-retryable status)."""

    def __init__(self, message: str, *, status: int | None = None, attempts: int = 1) -> None:
        super().__init__(message)
        self.status = status
        self.attempts = attempts


@dataclass
class Completion:
    """One choice of a completion or chat response."""

    text: str
    finish_reason: str | None = None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    raw: dict[str, Any] = field(default_factory=dict)


class OpenAIClient:
    """Synchronous client; thread-safe (one ``httpx.Client`` with a connection pool).

    Args:
        base_url: e.g. ``https://api.openai.com/v1`` or ``http://127.0.0.1:8000/v1``.
        api_key: the key; default: the environment variable ``api_key_env``.
        api_key_env: where to read the key (a local server usually needs none).
        timeout_s: per-request timeout.
        max_retries: retries after the first attempt for transient failures.
        backoff_s: the first retry's delay; doubled each retry (with up to 10% jitter).
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        timeout_s: float = 60.0,
        max_retries: int = 3,
        backoff_s: float = 1.0,
        max_backoff_s: float = 30.0,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {base_url!r}")
        key = api_key if api_key is not None else os.environ.get(api_key_env, "")
        headers = {"Content-Type": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self.base_url = base_url.rstrip("/")
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout_s)

    def close(self) -> None:
        self._http.close()

    def _delay(self, attempt: int, response: httpx.Response | None) -> float:
        if response is not None:
            retry_after = response.headers.get("retry-after")
            if retry_after is not None:
                try:
                    return min(float(retry_after), self.max_backoff_s)
                except ValueError:
                    pass
        delay = min(self.backoff_s * (2**attempt), self.max_backoff_s)
        return float(delay * (1.0 + 0.1 * random.random()))

    def post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        """POST ``payload`` as JSON and return the JSON object, retrying transient failures."""
        last = "no attempt made"
        status: int | None = None
        for attempt in range(self.max_retries + 1):
            response: httpx.Response | None = None
            try:
                response = self._http.post(path, json=payload)
                status = response.status_code
                if status == 200:
                    body = response.json()
                    if (
                        isinstance(body, dict)
                        and isinstance(body.get("choices"), list)
                        and body["choices"]
                    ):
                        return body
                    last = f"malformed response body: {response.text[:200]!r}"
                elif status in RETRY_STATUS:
                    last = f"HTTP {status}: {response.text[:200]}"
                else:
                    raise APIError(
                        f"HTTP {status} from {self.base_url}{path}: {response.text[:500]}",
                        status=status,
                        attempts=attempt + 1,
                    )
            except (httpx.TimeoutException, httpx.TransportError) as err:
                last = f"{type(err).__name__}: {err}"
            except ValueError:  # the body is not JSON
                last = (
                    f"response is not JSON: {response.text[:200] if response is not None else ''!r}"
                )
            if attempt < self.max_retries:
                time.sleep(self._delay(attempt, response))
        raise APIError(
            f"{self.base_url}{path} failed after {self.max_retries + 1} attempts: {last}",
            status=status,
            attempts=self.max_retries + 1,
        )

    def complete(self, model: str, prompt: str, **params: Any) -> Completion:
        """``/completions``: continue ``prompt`` (``max_tokens``, ``temperature``, ``stop``, ... in ``params``)."""
        body = self.post("/completions", {"model": model, "prompt": prompt, **params})
        choice = body["choices"][0]
        usage = body.get("usage") or {}
        return Completion(
            text=str(choice.get("text") or ""),
            finish_reason=choice.get("finish_reason"),
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            raw=body,
        )

    def chat(self, model: str, messages: list[dict[str, Any]], **params: Any) -> Completion:
        """``/chat/completions``: the assistant's reply to ``messages`` (``tools`` etc. in ``params``)."""
        body = self.post("/chat/completions", {"model": model, "messages": messages, **params})
        choice = body["choices"][0]
        message = choice.get("message") or {}
        if not isinstance(message, dict):
            raise APIError(f"malformed chat response: message is {type(message).__name__}")
        usage = body.get("usage") or {}
        return Completion(
            text=str(message.get("content") or ""),
            finish_reason=choice.get("finish_reason"),
            tool_calls=list(message.get("tool_calls") or []),
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            raw=body,
        )
