"""Env-call plumbing of the chat loop: the thread pool env calls run in, and their timeouts.

Every env construction, reset and step runs in a pool thread with a deadline, so a
slow or hung env (a docker sandbox, a browser) never blocks generation or other
episodes. A call past its deadline cannot be stopped; the pool is replaced instead
of waiting for it, and an env that failed or hung is closed in the background.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

import gymnasium as gym

#: What a step call returns: ``env.step``'s five values and the seconds it took.
StepOut = tuple[str, float, bool, bool, dict[str, Any], float]


def step_env(env: gym.Env[str, str], text: str) -> StepOut:
    """``env.step(text)``, timed, with the reward and flags as plain Python values."""
    started = time.perf_counter()
    observation, reward, terminated, truncated, info = env.step(text)
    return (
        observation,
        float(reward),
        bool(terminated),
        bool(truncated),
        info,
        time.perf_counter() - started,
    )


class EnvCalls:
    """The thread pool env calls run in.

    A call past its deadline cannot be stopped and keeps its thread, so instead of
    leaving the pool a worker short (later calls would queue behind the hung one and
    time out in turn) the pool is replaced: the old one finishes what it holds and exits.
    """

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._lock = threading.Lock()
        self._pool = self._new()

    def _new(self) -> cf.ThreadPoolExecutor:
        return cf.ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="rounds-env")

    def submit(self, fn: Callable[..., Any], *args: Any) -> cf.Future[Any]:
        with self._lock:
            return self._pool.submit(fn, *args)

    def abandon_hung(self) -> None:
        """Give up on the calls that are past their deadline: start a fresh pool."""
        with self._lock:
            self._pool.shutdown(wait=False)
            self._pool = self._new()

    def shutdown(self) -> None:
        with self._lock:
            self._pool.shutdown(wait=False, cancel_futures=True)


def discard(env: gym.Env[str, str] | None) -> None:
    """Close an env that failed or hung, without waiting for it (it may never return)."""
    if env is None:
        return

    def close() -> None:
        with contextlib.suppress(Exception):
            env.close()

    threading.Thread(target=close, name="rounds-env-close", daemon=True).start()


class Opening:
    """The env a reset call is making, shared with the caller that may stop waiting.

    Whoever comes second closes the env: the caller when it gives up after the env was
    made, or the call when the env arrives after the caller gave up (a slow
    ``make_env``, e.g. a sandbox that took too long to start, would otherwise leak).
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.env: gym.Env[str, str] | None = None
        self.abandoned = False

    def keep(self, env: gym.Env[str, str]) -> gym.Env[str, str]:
        """Hold ``env`` for the caller; raise if the caller already gave up (the env is closed)."""
        with self.lock:
            self.env = env
            if not self.abandoned:
                return env
        discard(env)
        raise RuntimeError("abandoned after the timeout")

    def abandon(self) -> None:
        with self.lock:
            self.abandoned = True
            env = self.env
        discard(env)


def seconds(timeout_s: float | None) -> str:
    """A timeout as the truncation reasons print it."""
    return "no limit" if timeout_s is None else f"{timeout_s:g}s"


def describe(err: BaseException) -> str:
    """``Type: message`` of an exception, for a truncation reason."""
    return "".join(traceback.format_exception_only(err)).strip()
