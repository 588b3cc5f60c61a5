"""What an env worker is to the pool: something that runs :class:`~rounds.distributed.host.EnvHost`
calls and can be killed, with the three ways a call can fail."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any


class WorkerDied(RuntimeError):
    """The worker process or actor is gone (crashed, killed, its node lost)."""


class WorkerTimeout(TimeoutError):
    """The worker did not answer in time; it is treated as hung and replaced."""


class WorkerCallError(RuntimeError):
    """The env raised inside a live worker (``Type: message``); the worker is fine."""


class Worker(ABC):
    """One env worker: a process (``process`` backend) or a Ray actor (``ray``)."""

    def __init__(self, index: int) -> None:
        self.index = index
        #: Keys of the envs this worker owns.
        self.envs: set[str] = set()

    @abstractmethod
    def describe_self(self) -> str:
        """``env worker 3 (process 1234)``: how errors name this worker."""

    @abstractmethod
    def call(self, method: str, *args: Any, timeout_s: float | None = None) -> Any:
        """``EnvHost.method(*args)`` in the worker.

        Raises:
            WorkerDied: the worker is gone.
            WorkerTimeout: no answer within ``timeout_s``.
            WorkerCallError: the env raised.
        """

    @abstractmethod
    def kill(self) -> None:
        """Stop the worker now, whatever it is doing; waiting calls fail with WorkerDied."""

    @abstractmethod
    def shutdown(self) -> None:
        """Stop the worker after closing its envs (the end of a run)."""
