"""Env workers: envs in worker processes or Ray actors, behind the chat loop's env interface.

``EnvWorkers(backend, workers)`` is a pool of workers; ``pool.make(env_id, **kwargs)``
returns a :class:`WorkerEnv`, a `rounds` env like the one ``gym.make`` returns,
whose episodes run in a worker. ``run_episodes``, ``rounds eval`` and the trainer
take it unchanged (``--env-workers 8 --backend ray``,
``GRPOConfig(env_workers=8, env_backend="ray")``).

Backends:

- ``thread``: no workers; ``make`` is ``gym.make`` (the chat loop's own thread pool
  runs env calls). Right for I/O-bound envs (sandboxes, browsers, HTTP).
- ``process``: spawned worker processes on this machine, for CPU-heavy pure-Python
  envs whose steps would contend for the GIL in threads.
- ``ray``: Ray actors, on this machine or a cluster (``ray_address`` or
  ``RAY_ADDRESS``), placed by custom resources (an env class may declare
  ``worker_resources = {"docker": 1}``).

A worker that dies (crash, kill, lost node) or hangs (no answer within
``call_timeout_s``, or the chat loop gave up on it) fails the calls of its envs with
the reason, so their episodes end truncated with it; the worker is killed and
replaced, and :attr:`EnvWorkers.replaced` counts it. Each new env goes to the
least-loaded worker, so with at least as many workers as concurrent episodes a
worker owns one env and a death ends exactly one episode.
"""

from __future__ import annotations

import itertools
import threading
from typing import Any, Literal

import gymnasium as gym

from rounds.distributed.host import resolve_env_id
from rounds.distributed.proxy import EnvDescription, ProxyEnv, StepTuple
from rounds.distributed.worker import Worker, WorkerCallError, WorkerDied, WorkerTimeout
from rounds.registration import env_class, make

Backend = Literal["thread", "process", "ray"]
BACKENDS: tuple[str, ...] = ("thread", "process", "ray")


class EnvWorkers:
    """A pool of env workers (see the module docstring).

    Args:
        backend: ``thread``, ``process`` or ``ray``.
        workers: how many workers (ignored by ``thread``).
        call_timeout_s: a worker call slower than this fails, and the worker is replaced
            as hung (None: wait; the chat loop's own step timeout still applies).
        resources: Ray custom resources every actor needs, added to what the env class
            declares in ``worker_resources``.
        cpus_per_worker: CPUs Ray reserves for each actor.
        ray_address: the Ray cluster to join (default ``RAY_ADDRESS``, else a local one).
    """

    def __init__(
        self,
        backend: Backend | str = "thread",
        workers: int = 1,
        *,
        call_timeout_s: float | None = 300.0,
        resources: dict[str, float] | None = None,
        cpus_per_worker: float = 1.0,
        ray_address: str | None = None,
    ) -> None:
        if backend not in BACKENDS:
            raise ValueError(
                f"unknown env backend {backend!r}; choose one of {', '.join(BACKENDS)}"
            )
        if workers < 1:
            raise ValueError(f"env workers must be at least 1, got {workers}")
        self.backend = backend
        self.size = workers
        self.call_timeout_s = call_timeout_s
        self.resources = dict(resources or {})
        self.cpus_per_worker = cpus_per_worker
        self.ray_address = ray_address
        #: Workers that died or hung and were replaced.
        self.replaced = 0
        self._workers: list[Worker] = []
        self._slots: list[Worker | None] = [None] * workers
        self._lock = threading.Lock()
        self._keys = itertools.count()
        self._env_resources: dict[str, float] = {}
        self._closed = False

    # ------------------------------------------------------------ the pool

    def _start(self, index: int) -> Worker:
        if self.backend == "process":
            from rounds.distributed.process_worker import ProcessWorker

            return ProcessWorker(index)
        from rounds.distributed.ray_worker import RayWorker, ensure_ray

        ensure_ray(self.ray_address)
        resources = {**self._env_resources, **self.resources}
        return RayWorker(index, resources, self.cpus_per_worker)

    def _assign(self, key: str) -> Worker:
        """The least-loaded worker (starting the pool's workers on first use)."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the env workers are shutting down")
            for index, worker in enumerate(self._slots):
                if worker is None:
                    self._slots[index] = self._start(index)
            live = [w for w in self._slots if w is not None]
            chosen = min(live, key=lambda w: (len(w.envs), w.index))
            chosen.envs.add(key)
            return chosen

    def replace(self, worker: Worker) -> None:
        """Kill ``worker`` (dead or hung) and start another in its slot; counted in
        :attr:`replaced`. A worker already replaced is left alone."""
        with self._lock:
            if self._closed or self._slots[worker.index] is not worker:
                return
            self._slots[worker.index] = None
            self.replaced += 1
        worker.kill()
        with self._lock:
            if not self._closed and self._slots[worker.index] is None:
                self._slots[worker.index] = self._start(worker.index)

    def release(self, worker: Worker, key: str) -> None:
        with self._lock:
            worker.envs.discard(key)

    def make(self, env_id: str, **kwargs: Any) -> gym.Env[str, str]:
        """An env of ``env_id`` made with ``kwargs``: local for ``thread``, else in a worker."""
        if self.backend == "thread":
            return make(resolve_env_id(env_id), **kwargs)
        if self.backend == "ray" and not self._env_resources:
            cls = env_class(resolve_env_id(env_id))
            self._env_resources = dict(getattr(cls, "worker_resources", {}) or {})
        key = f"env-{next(self._keys)}"
        worker = self._assign(key)
        try:
            description = worker.call("open", key, env_id, kwargs, timeout_s=self.call_timeout_s)
        except (WorkerDied, WorkerTimeout) as err:
            self.release(worker, key)
            self.replace(worker)
            raise RuntimeError(str(err)) from err
        except WorkerCallError as err:
            self.release(worker, key)
            raise RuntimeError(f"cannot make {env_id} in {worker.describe_self()}: {err}") from err
        return WorkerEnv(self, worker, key, description)

    def metrics(self) -> dict[str, float]:
        """What a run logs about its env workers."""
        return {"env_workers": float(self.size), "env_workers_replaced": float(self.replaced)}

    def close(self) -> None:
        """Shut every worker down (their envs are closed first). The pool stays usable: a later
        ``make`` starts fresh workers (a trainer closes it at the end of each ``train()``)."""
        with self._lock:
            self._closed = True  # no replacement starts while the workers stop
            workers = [w for w in self._slots if w is not None]
            self._slots = [None] * self.size
        try:
            for worker in workers:
                worker.shutdown()
        finally:
            with self._lock:
                self._closed = False

    def __enter__(self) -> EnvWorkers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class WorkerEnv(ProxyEnv):
    """A `rounds` env whose episodes run in an env worker (made by :meth:`EnvWorkers.make`)."""

    def __init__(
        self, pool: EnvWorkers, worker: Worker, key: str, description: EnvDescription
    ) -> None:
        super().__init__(description)
        self.pool = pool
        self.worker = worker
        self.key = key
        self._calls = 0  # calls in flight (a close while one runs means the caller gave up)
        self._lock = threading.Lock()

    def _call(self, method: str, *args: Any) -> Any:
        with self._lock:
            self._calls += 1
        try:
            return self.worker.call(method, self.key, *args, timeout_s=self.pool.call_timeout_s)
        except (WorkerDied, WorkerTimeout) as err:
            self.pool.replace(self.worker)
            raise WorkerDied(str(err)) from err
        except WorkerCallError as err:
            raise RuntimeError(str(err)) from err
        finally:
            with self._lock:
                self._calls -= 1

    def _remote_reset(
        self, seed: int | None, options: dict[str, Any] | None
    ) -> tuple[str, dict[str, Any]]:
        observation, info = self._call("reset", seed, options)
        return str(observation), dict(info)

    def _remote_step(self, action: str) -> StepTuple:
        observation, reward, terminated, truncated, info = self._call("step", action)
        return str(observation), float(reward), bool(terminated), bool(truncated), dict(info)

    def _remote_close(self) -> None:
        """Free the env; a close while a call is still running means the caller gave up on a
        hung worker, which is then replaced."""
        with self._lock:
            hung = self._calls > 0
        if hung:
            self.pool.replace(self.worker)
        else:
            try:
                self.worker.call("close", self.key, timeout_s=10.0)
            except (WorkerDied, WorkerTimeout):
                self.pool.replace(self.worker)
            except WorkerCallError:
                pass  # the env's own close failed; the worker is fine
        self.pool.release(self.worker, self.key)
