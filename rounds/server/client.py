"""``rounds/Remote-v0``: a served `rounds` env as a local Gymnasium env.

``gym.make("rounds/Remote-v0", url="http://127.0.0.1:8000")`` opens a session on
a ``rounds serve`` server and behaves like the env it serves: the same
observations, rewards, ``info`` and seeding, the system prompt and tools from
``/schema``, so the chat loop, ``rounds eval`` and the trainer use it unchanged.
Every request has a timeout; idempotent calls (``/schema``, ``/health``, ``/state``
and a reset, which with the same seed gives the same episode) are retried on a
connection error, a step never is (it may have been applied), and a server that
dies mid-episode ends the call with :class:`RemoteEnvError`, not a hang.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import httpx

from rounds.distributed.proxy import EnvDescription, ProxyEnv, StepTuple
from rounds.server.protocol import EnvResponse, SchemaResponse


class RemoteEnvError(RuntimeError):
    """The env server failed, refused a request (``status``) or stopped answering (``status``
    None)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class RemoteEnv(ProxyEnv):
    """A `rounds` env served by ``rounds serve`` (see the module docstring).

    Args:
        url: the server, e.g. ``http://127.0.0.1:8000``.
        env_id: the env id you expect the server to serve; a different one is an error.
        timeout_s: the limit of one request (a step included).
        retries: extra attempts of an idempotent request after a connection error.
        retry_backoff_s: the wait before the first retry (doubled each time).
    """

    def __init__(
        self,
        url: str,
        env_id: str | None = None,
        *,
        timeout_s: float = 60.0,
        retries: int = 3,
        retry_backoff_s: float = 0.2,
    ) -> None:
        self.url = url.rstrip("/")
        self.retries = retries
        self.retry_backoff_s = retry_backoff_s
        self._http = httpx.Client(base_url=self.url, timeout=timeout_s, trust_env=False)
        self.session_id: str | None = None
        try:
            schema = SchemaResponse.model_validate(self._request("GET", "/schema", idempotent=True))
        except Exception:
            self._http.close()
            raise
        description: EnvDescription = schema.env
        if env_id is not None and env_id != description.env_id:
            self._http.close()
            raise RemoteEnvError(
                f"the server at {self.url} serves {description.env_id}, not {env_id}; "
                f"pass env_id={description.env_id!r} or the url of a {env_id} server"
            )
        super().__init__(description)

    def _request(
        self, method: str, path: str, body: dict[str, Any] | None = None, *, idempotent: bool
    ) -> Any:
        attempts = 1 + (self.retries if idempotent else 0)
        for attempt in range(attempts):
            try:
                response = self._http.request(method, path, json=body)
            except httpx.TransportError as err:
                if attempt + 1 < attempts:
                    time.sleep(self.retry_backoff_s * 2**attempt)
                    continue
                raise RemoteEnvError(
                    f"the env server at {self.url} did not answer {method} {path} "
                    f"({type(err).__name__}: {err}); is `rounds serve` still running there?"
                ) from err
            if response.status_code >= 400:
                try:
                    detail = response.json().get("detail", response.text)
                except ValueError:
                    detail = response.text
                raise RemoteEnvError(
                    f"{method} {path} on {self.url} failed with {response.status_code}: {detail}",
                    response.status_code,
                )
            return response.json()
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _remote_reset(
        self, seed: int | None, options: dict[str, Any] | None
    ) -> tuple[str, dict[str, Any]]:
        options = dict(options or {})
        task_id = options.pop("task_id", None)
        if options:
            raise RemoteEnvError(
                f"a remote reset takes only the task_id option, not {sorted(options)}"
            )
        body = {"seed": seed, "task_id": task_id, "session_id": self.session_id}
        try:
            answer = self._request("POST", "/reset", body, idempotent=True)
        except RemoteEnvError as err:
            if err.status != 404 or self.session_id is None:
                raise
            # The server reaped this idle session (or restarted): open a new one.
            self.session_id = None
            answer = self._request("POST", "/reset", {**body, "session_id": None}, idempotent=True)
        response = EnvResponse.model_validate(answer)
        self.session_id = str(response.metadata["session_id"])
        return response.observation.text, response.observation.info

    def _remote_step(self, action: str) -> StepTuple:
        if self.session_id is None:
            raise RemoteEnvError("call reset() before step()")
        body = {"action": {"text": action}, "session_id": self.session_id}
        response = EnvResponse.model_validate(
            self._request("POST", "/step", body, idempotent=False)
        )
        observation = response.observation
        reward = 0.0 if response.reward is None else response.reward
        return (
            observation.text,
            reward,
            observation.terminated,
            observation.truncated,
            observation.info,
        )

    def _remote_close(self) -> None:
        if self.session_id is not None:
            # A server that is gone frees the session with its reaper.
            with contextlib.suppress(httpx.HTTPError):
                self._http.post("/close", json={"session_id": self.session_id}, timeout=5.0)
            self.session_id = None
        self._http.close()
