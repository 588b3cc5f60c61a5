"""Sandboxes for envs that run untrusted code: hardened docker containers or bubblewrap processes.

- :class:`Sandbox` (:mod:`.base`): start, ``exec(cmd, timeout)`` -> :class:`ExecResult`,
  read and write files, ``diff()`` against the start, ``reset()``, ``close()``.
- Backends: :class:`~.docker_backend.DockerSandbox` (Docker SDK, hardened by default) and
  :class:`~.process_backend.ProcessSandbox` (bubblewrap + rlimits, weaker).
- :class:`~.pool.SandboxPool`: warm sandboxes reset between episodes, thread-safe.
- :mod:`.images`: the base image from Debian packages (debootstrap + ``docker import``) and
  task images layered on it (``docker build``), without any registry.

Nothing here imports the Docker SDK until a docker sandbox is made.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from rounds.sandboxes.base import (
    LABEL,
    ExecResult,
    Limits,
    Sandbox,
    SandboxError,
    SandboxUnavailable,
)
from rounds.sandboxes.pool import SandboxFactory, SandboxPool, shared_pool

Backend = Literal["auto", "docker", "process"]
BACKENDS: tuple[str, ...] = ("auto", "docker", "process")


def resolve_backend(backend: str) -> str:
    """``docker`` or ``process`` for ``backend`` (``auto``: docker when a daemon answers,
    else bubblewrap).

    Raises:
        SandboxUnavailable: neither is available (nothing runs unconfined).
        ValueError: an unknown backend name.
    """
    from rounds.sandboxes.docker_backend import docker_available
    from rounds.sandboxes.process_backend import bwrap_path

    if backend not in BACKENDS:
        raise ValueError(
            f"unknown sandbox backend {backend!r}; choose one of {', '.join(BACKENDS)}"
        )
    if backend != "auto":
        return backend
    if docker_available():
        return "docker"
    if bwrap_path() is not None:
        return "process"
    raise SandboxUnavailable(
        "Neither a Docker daemon nor bubblewrap is available, and commands are never run "
        "unconfined. Install one: apt-get install docker.io (then start dockerd and run "
        "`rounds sandbox build-image`) or apt-get install bubblewrap."
    )


def make_sandbox(
    backend: str = "auto",
    *,
    files: Mapping[str, bytes] | None = None,
    image: str | None = None,
    workdir: str = "/work",
    limits: Limits | None = None,
) -> Sandbox:
    """A new, not yet started sandbox of ``backend`` (see :func:`resolve_backend`).

    ``image`` is the docker image (default: the base image); the process backend has none.
    """
    chosen = resolve_backend(backend)
    if chosen == "docker":
        from rounds.sandboxes.docker_backend import DEFAULT_IMAGE, DockerSandbox

        return DockerSandbox(
            image=image or DEFAULT_IMAGE, files=files, workdir=workdir, limits=limits
        )
    from rounds.sandboxes.process_backend import ProcessSandbox

    return ProcessSandbox(files=files, workdir=workdir, limits=limits)


__all__ = [
    "BACKENDS",
    "LABEL",
    "Backend",
    "ExecResult",
    "Limits",
    "Sandbox",
    "SandboxError",
    "SandboxFactory",
    "SandboxPool",
    "SandboxUnavailable",
    "make_sandbox",
    "resolve_backend",
    "shared_pool",
]
