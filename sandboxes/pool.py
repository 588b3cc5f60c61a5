"""A pool of warm sandboxes, reset between episodes instead of recreated.

Starting a container costs about half a second; restoring its work tree costs
a tenth of that. An env takes a sandbox from the pool for an episode
(:meth:`SandboxPool.acquire` resets it to the task's files) and gives it back
when the episode's env is reset or closed. The pool is safe under a thread
pool: a condition variable guards it, a sandbox is never handed to two
holders, and one that fails its reset (a killed container) is closed and
replaced rather than handed out.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import threading
import time
from collections.abc import Callable, Hashable, Iterator, Mapping

from rounds.sandboxes.base import Sandbox, SandboxError

#: ``factory(files)``: a new, not yet started sandbox whose work tree starts as ``files``.
SandboxFactory = Callable[[Mapping[str, bytes] | None], Sandbox]


class SandboxPool:
    """Warm sandboxes made by ``factory``, at most ``max_size`` alive at once.

    Args:
        factory: ``factory(files)`` makes a new, not yet started sandbox whose work tree
            starts as ``files``.
        max_size: sandboxes alive at once (leased and idle); :meth:`acquire` waits when
            all are leased.
    """

    def __init__(self, factory: SandboxFactory, *, max_size: int = 8) -> None:
        if max_size < 1:
            raise ValueError(f"max_size must be at least 1, got {max_size}")
        self.factory = factory
        self.max_size = max_size
        self._idle: list[Sandbox] = []
        self._leased: set[int] = set()
        self._alive = 0
        self._closed = False
        self._cond = threading.Condition()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def idle(self) -> int:
        with self._cond:
            return len(self._idle)

    @property
    def leased(self) -> int:
        with self._cond:
            return len(self._leased)

    def warm(self, count: int) -> None:
        """Start ``count`` sandboxes now (up to ``max_size``) so the first episodes find them."""
        for _ in range(count):
            with self._cond:
                if self._closed or self._alive >= self.max_size:
                    return
                self._alive += 1
            try:
                sandbox = self.factory(None).start()
            except BaseException:
                with self._cond:
                    self._alive -= 1
                    self._cond.notify()
                raise
            with self._cond:
                self._idle.append(sandbox)
                self._cond.notify()

    def acquire(self, files: Mapping[str, bytes] | None = None, timeout: float = 300.0) -> Sandbox:
        """A sandbox whose work tree is exactly ``files`` (or its start, when None).

        Raises:
            SandboxError: the pool is closed, or no sandbox came free within ``timeout``.
        """
        deadline = time.monotonic() + timeout
        while True:
            sandbox = self._take(deadline)
            if sandbox is None:  # room to start a new one
                try:
                    sandbox = self.factory(files).start()
                except BaseException:
                    self._forget(None)
                    raise
                with self._cond:
                    self._leased.add(id(sandbox))
                return sandbox
            try:
                sandbox.reset(files)
            except Exception:  # a broken sandbox is replaced, never handed out
                self._discard(sandbox)
                continue
            with self._cond:
                self._leased.add(id(sandbox))
            return sandbox

    def _take(self, deadline: float) -> Sandbox | None:
        """An idle sandbox, or None when the caller may start a new one."""
        with self._cond:
            while True:
                if self._closed:
                    raise SandboxError("The sandbox pool is closed.")
                if self._idle:
                    return self._idle.pop()
                if self._alive < self.max_size:
                    self._alive += 1
                    return None
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise SandboxError(
                        f"No sandbox came free within the timeout; all {self.max_size} are in "
                        "use. Raise max_size or release sandboxes (env.close())."
                    )
                self._cond.wait(remaining)

    def release(self, sandbox: Sandbox, *, broken: bool = False) -> None:
        """Give a sandbox back; ``broken`` (or a closed pool) closes it instead."""
        with self._cond:
            if id(sandbox) not in self._leased:
                return
            self._leased.discard(id(sandbox))
            keep = not broken and not self._closed and sandbox.running
            if keep:
                self._idle.append(sandbox)
                self._cond.notify()
        if not keep:
            self._discard(sandbox)

    def _discard(self, sandbox: Sandbox) -> None:
        with contextlib.suppress(Exception):
            sandbox.close()
        self._forget(sandbox)

    def _forget(self, sandbox: Sandbox | None) -> None:
        with self._cond:
            self._alive -= 1
            if sandbox is not None:
                self._leased.discard(id(sandbox))
            self._cond.notify()

    @contextlib.contextmanager
    def lease(self, files: Mapping[str, bytes] | None = None) -> Iterator[Sandbox]:
        """``with pool.lease(files) as sandbox:`` acquire, then release (broken on an error)."""
        sandbox = self.acquire(files)
        try:
            yield sandbox
        except BaseException:
            self.release(sandbox, broken=True)
            raise
        self.release(sandbox)

    def close(self) -> None:
        """Close every idle sandbox now; leased ones close when released."""
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._cond.notify_all()
        for sandbox in idle:
            self._discard(sandbox)


_SHARED: dict[Hashable, SandboxPool] = {}
_SHARED_LOCK = threading.Lock()


def shared_pool(key: Hashable, factory: SandboxFactory, *, max_size: int = 8) -> SandboxPool:
    """The process-wide pool for ``key`` (e.g. backend, image and limits), made on first use.

    Every env instance with the same key draws from one pool, so the envs a trainer makes
    for its thread pool share warm sandboxes. Shared pools are closed at interpreter exit.
    """
    with _SHARED_LOCK:
        pool = _SHARED.get(key)
        if pool is None or pool.closed:
            pool = SandboxPool(factory, max_size=max_size)
            _SHARED[key] = pool
        return pool


def _forget_parent_pools() -> None:
    """In a forked child the parent's pools (and their sandboxes) are not ours."""
    global _SHARED_LOCK
    _SHARED_LOCK = threading.Lock()
    _SHARED.clear()


os.register_at_fork(after_in_child=_forget_parent_pools)


@atexit.register
def close_shared_pools() -> None:
    """Close every shared pool (their idle sandboxes are removed)."""
    with _SHARED_LOCK:
        pools = list(_SHARED.values())
        _SHARED.clear()
    for pool in pools:
        pool.close()
