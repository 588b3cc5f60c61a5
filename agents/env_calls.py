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

    A pool whose calls all finished is kept for the next ``EnvCalls`` of its size (a
    trainer makes one per step): starting its threads again cost about 3 ms of a 0.095 s
    single-turn step (``benchmarks/trainer_step.py``, 32 episodes).
    """

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._lock = threading.Lock()
        self._pending: set[cf.Future[Any]] = set()
        self._pool: cf.ThreadPoolExecutor | None = _idle_pools.take(workers) or self._new()

    def _new(self) -> cf.ThreadPoolExecutor:
        return cf.ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="rounds-env")

    def submit(self, fn: Callable[..., Any], *args: Any) -> cf.Future[Any]:
        """Run ``fn(*args)`` in the pool. Raises RuntimeError after :meth:`shutdown` (as a
        shut-down executor does), so a late caller never uses a pool handed on to another."""
        with self._lock:
            if self._pool is None:
                raise RuntimeError("env calls were shut down")
            future = self._pool.submit(fn, *args)
            self._pending = {f for f in self._pending if not f.done()} | {future}
            return future

    def abandon_hung(self) -> None:
        """Give up on the calls that are past their deadline: start a fresh pool."""
        with self._lock:
            if self._pool is None:
                return
            self._pool.shutdown(wait=False)
            self._pool = self._new()
            self._pending = set()

    def shutdown(self) -> None:
        """Cancel what has not started; keep the pool for later if nothing is running. The
        pool is let go either way: later calls on this object change nothing."""
        with self._lock:
            pool, self._pool = self._pool, None
            if pool is None:
                return
            if any(not f.done() for f in self._pending):
                pool.shutdown(wait=False, cancel_futures=True)
            else:
                _idle_pools.keep(self.workers, pool)


class _IdlePools:
    """Thread pools with no call running, by size, for the next ``EnvCalls`` to reuse."""

    #: At most this many are kept (the oldest is shut down).
    LIMIT = 4

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pools: list[tuple[int, cf.ThreadPoolExecutor]] = []

    def take(self, workers: int) -> cf.ThreadPoolExecutor | None:
        with self._lock:
            for i, (size, pool) in enumerate(self._pools):
                if size == workers:
                    del self._pools[i]
                    return pool
        return None

    def keep(self, workers: int, pool: cf.ThreadPoolExecutor) -> None:
        with self._lock:
            self._pools.append((workers, pool))
            dropped = self._pools[: -self.LIMIT]
            del self._pools[: -self.LIMIT]
        for _, old in dropped:
            old.shutdown(wait=False)


_idle_pools = _IdlePools()


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
