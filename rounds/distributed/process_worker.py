"""The ``process`` backend's worker: a spawned process that owns envs, driven over a pipe.

For one machine with CPU-heavy pure-Python envs, where threads would contend for the
GIL. A worker answers one call at a time; a caller waits at most its timeout, and a
worker that died or was killed answers every waiting call with :class:`WorkerDied`.
"""

from __future__ import annotations

import multiprocessing as mp
import signal
import threading
import time
from multiprocessing.connection import Connection
from typing import Any

from rounds.distributed.worker import Worker, WorkerCallError, WorkerDied, WorkerTimeout


def serve_envs(conn: Connection) -> None:
    """The worker process's loop: ``(method, args)`` in, ``(ok, value or reason)`` out."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the parent, which stops us
    from rounds.agents.env_calls import describe
    from rounds.distributed.host import EnvHost

    host = EnvHost()
    try:
        while True:
            try:
                method, args = conn.recv()
            except (EOFError, OSError):
                return
            try:
                conn.send((True, getattr(host, method)(*args)))
            except Exception as err:  # an env error is the caller's to record, not ours
                conn.send((False, describe(err)))
    finally:
        host.close_all()


class ProcessWorker(Worker):
    """One spawned worker process."""

    def __init__(self, index: int) -> None:
        super().__init__(index)
        context = mp.get_context("spawn")
        self._conn, child = context.Pipe()
        self.process = context.Process(
            target=serve_envs, args=(child,), name=f"rounds-env-worker-{index}", daemon=True
        )
        self.process.start()
        child.close()  # only the worker holds its end: its death is our EOF
        self._lock = threading.Lock()

    def describe_self(self) -> str:
        return f"env worker {self.index} (process {self.process.pid})"

    def call(self, method: str, *args: Any, timeout_s: float | None = None) -> Any:
        started = time.monotonic()
        if not self._lock.acquire(timeout=-1 if timeout_s is None else timeout_s):
            raise WorkerTimeout(f"{self.describe_self()} stayed busy for {timeout_s:g}s")
        try:
            if not self.process.is_alive():
                raise WorkerDied(self._death())
            try:
                self._conn.send((method, args))
                left = (
                    None
                    if timeout_s is None
                    else max(0.0, timeout_s - (time.monotonic() - started))
                )
                if left is not None and not self._conn.poll(left):
                    raise WorkerTimeout(
                        f"{self.describe_self()} did not answer {method} in {timeout_s:g}s"
                    )
                ok, value = self._conn.recv()
            except (EOFError, OSError, BrokenPipeError) as err:
                raise WorkerDied(self._death()) from err
        finally:
            self._lock.release()
        if not ok:
            raise WorkerCallError(value)
        return value

    def _death(self) -> str:
        self.process.join(timeout=1.0)
        code = self.process.exitcode
        how = (
            f"killed by signal {-code}"
            if code is not None and code < 0
            else f"exited with code {code}"
            if code is not None
            else "stopped answering"
        )
        return f"{self.describe_self()} died ({how})"

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=5.0)  # a caller waiting on the pipe now gets EOF: WorkerDied

    def shutdown(self) -> None:
        """Close the pipe (the worker closes its envs and exits), then make sure it is gone."""
        self._conn.close()
        self.process.join(timeout=5.0)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout=5.0)
