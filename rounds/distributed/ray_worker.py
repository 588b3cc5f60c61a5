"""The ``ray`` backend's worker: an :class:`~rounds.distributed.host.EnvHost` as a Ray actor.

Ray is imported here only, when the first actor starts. An actor declares the
custom resources its envs need (``{"docker": 1}``, ``{"browser": 1}``), so Ray
places it on a node that offers them; it is never restarted by Ray (a dead actor's
envs are lost anyway): the pool replaces it and counts the replacement.
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Any

from rounds.distributed.worker import Worker, WorkerCallError, WorkerDied, WorkerTimeout


def ensure_ray(address: str | None = None) -> None:
    """Connect to Ray: ``address`` (or ``RAY_ADDRESS``) when given, else a local instance.
    Usage statistics stay off (no network beyond the cluster)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    if ray.is_initialized():
        return
    if address is None and os.environ.get("RAY_ADDRESS"):
        address = os.environ["RAY_ADDRESS"]
    ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING)


_ACTOR_CLASS: Any = None


def _actor_class() -> Any:
    global _ACTOR_CLASS
    if _ACTOR_CLASS is None:
        import ray

        from rounds.distributed.host import EnvHost

        _ACTOR_CLASS = ray.remote(max_restarts=0, max_task_retries=0)(EnvHost)
    return _ACTOR_CLASS


class RayWorker(Worker):
    """One Ray actor owning envs.

    Args:
        index: the pool's slot.
        resources: Ray custom resources the actor needs, e.g. ``{"docker": 1}``.
        num_cpus: CPUs Ray reserves for the actor.
    """

    def __init__(self, index: int, resources: dict[str, float], num_cpus: float) -> None:
        super().__init__(index)
        self.actor = (
            _actor_class()
            .options(
                num_cpus=num_cpus,
                resources=dict(resources) or None,
                name=None,
                lifetime=None,
            )
            .remote()
        )
        self._pid: int | None = None

    def describe_self(self) -> str:
        where = f"pid {self._pid}" if self._pid is not None else self.actor._actor_id.hex()[:12]
        return f"env worker {self.index} (Ray actor {where})"

    def call(self, method: str, *args: Any, timeout_s: float | None = None) -> Any:
        import ray
        from ray.exceptions import GetTimeoutError, RayActorError, RayTaskError

        ref = getattr(self.actor, method).remote(*args)
        try:
            return ray.get(ref, timeout=timeout_s)
        except GetTimeoutError as err:
            raise WorkerTimeout(
                f"{self.describe_self()} did not answer {method} in {timeout_s:g}s"
            ) from err
        except RayActorError as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise WorkerDied(f"{self.describe_self()} died ({first})") from err
        except RayTaskError as err:
            cause = err.cause if isinstance(err.cause, BaseException) else err
            raise WorkerCallError(f"{type(cause).__name__}: {cause}") from err

    def remember_pid(self, timeout_s: float | None) -> int:
        """The actor's process id (also named in later errors)."""
        self._pid = int(self.call("pid", timeout_s=timeout_s))
        return self._pid

    def kill(self) -> None:
        import ray

        ray.kill(self.actor, no_restart=True)

    def shutdown(self) -> None:
        import ray

        # A dead or hung actor has nothing left to close.
        with contextlib.suppress(Exception):
            ray.get(self.actor.close_all.remote(), timeout=10.0)
        ray.kill(self.actor, no_restart=True)
