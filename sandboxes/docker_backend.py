"""The ``docker`` backend: a hardened container per sandbox, on the Docker SDK for Python.

Hardening, all on by default: no network (``network_mode="none"``), memory,
CPU and pids limits, every capability dropped, ``no-new-privileges``, a
read-only root file system with a size-limited private ``/tmp``, and a
size-limited tmpfs volume as the only writable work tree. The container's
keeper process runs as ``nobody`` and commands as the unprivileged user
``rounds`` (uid 1000), so a command's clean-up (``kill -9 -1``) can never stop
the container itself.

Every container and volume carries the :data:`~.base.LABEL` label and is
removed on :meth:`DockerSandbox.close`, at interpreter exit (``atexit``), and
after a crash by ``rounds sandbox prune`` (:func:`prune`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import select
import struct
import threading
import time
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self

from rounds.sandboxes.base import (
    LABEL,
    TIMEOUT_EXIT,
    WRAPPER,
    ExecResult,
    Limits,
    Sandbox,
    SandboxError,
    SandboxUnavailable,
    decode_output,
    pack_files,
    track,
    unpack_files,
    untrack,
)
from rounds.sandboxes.command_server import CommandChannel

if TYPE_CHECKING:
    import docker
    from docker.models.containers import Container

#: The base image ``rounds sandbox build-image`` makes (debootstrap + docker import).
DEFAULT_IMAGE = "rounds/sandbox-base:bookworm"
#: The unprivileged user commands run as, and the keeper's user.
COMMAND_USER = "1000:1000"
KEEPER_USER = "65534:65534"
_UID, _GID = 1000, 1000
#: Seconds past a command's own timeout before the host gives up on it and kills it.
_GRACE_S = 5.0


def docker_client(timeout: float = 120.0) -> docker.DockerClient:
    """A client of the local Docker daemon.

    Raises:
        SandboxUnavailable: the ``docker`` package is missing or no daemon answers.
    """
    try:
        import docker
    except ImportError as err:
        raise SandboxUnavailable(
            "The docker backend needs the Docker SDK: pip install 'rounds[docker]'."
        ) from err
    try:
        client = docker.from_env(timeout=int(timeout), max_pool_size=32)
        client.ping()
    except Exception as err:
        raise SandboxUnavailable(
            f"No Docker daemon answers ({err}). Install and start one (Debian: apt-get install "
            "docker.io; dockerd &), or use the process backend (bubblewrap)."
        ) from err
    return client


def docker_available() -> bool:
    """A Docker daemon answers and the SDK is installed."""
    try:
        docker_client(timeout=10).close()
    except SandboxUnavailable:
        return False
    return True


class DockerSandbox(Sandbox):
    """A sandbox in a hardened docker container (see the module docstring).

    Args:
        image: the image to run; it needs ``bash``, ``timeout`` and a user with uid 1000
            (the base image from ``rounds sandbox build-image`` has them).
        files: the work tree at start; ``None`` keeps the image's content of ``workdir``.
        workdir: the work tree's path in the container.
        limits: resource limits.
        client: a Docker client to reuse (default: one from the environment).
    """

    backend = "docker"

    def __init__(
        self,
        *,
        image: str = DEFAULT_IMAGE,
        files: Mapping[str, bytes] | None = None,
        workdir: str = "/work",
        limits: Limits | None = None,
        client: docker.DockerClient | None = None,
    ) -> None:
        super().__init__(files=files, workdir=workdir, limits=limits)
        self.image = image
        self._client = client
        self._container: Container | None = None
        self._volume_name: str | None = None
        self._channel: CommandChannel | None = None
        self._lock = threading.RLock()
        self.name = f"rounds-{uuid.uuid4().hex[:12]}"

    @property
    def running(self) -> bool:
        return self._container is not None

    @property
    def container_id(self) -> str | None:
        return self._container.id if self._container is not None else None

    # ------------------------------------------------------------ lifecycle

    def start(self) -> Self:
        with self._lock:
            if self._container is not None:
                return self
            if self._client is None:
                self._client = docker_client()
            client = self._client
            import docker.errors

            try:
                client.images.get(self.image)
            except docker.errors.ImageNotFound as err:
                raise SandboxUnavailable(
                    f"The image {self.image!r} is not on this machine. Build the base image with "
                    "`rounds sandbox build-image` (or a task image with `rounds sandbox "
                    "build-image --task-dockerfile ...`)."
                ) from err
            track(self)
            try:
                self._create(client)
            except BaseException:
                self.close()
                raise
            return self

    def _create(self, client: docker.DockerClient) -> None:
        limits = self.limits
        labels = {LABEL: "1", f"{LABEL}.backend": "docker", f"{LABEL}.pid": str(os.getpid())}
        volume = client.volumes.create(
            name=f"{self.name}-work",
            driver="local",
            driver_opts={
                "type": "tmpfs",
                "device": "tmpfs",
                "o": f"size={limits.work_mb}m,uid={_UID},gid={_GID},mode=0755",
            },
            labels=labels,
        )
        self._volume_name = volume.name
        memory = f"{limits.memory_mb}m"
        self._container = client.containers.run(
            self.image,
            ["sleep", "infinity"],
            name=self.name,
            detach=True,
            init=True,
            user=KEEPER_USER,
            working_dir=self.workdir,
            network_mode="none",
            mem_limit=memory,
            memswap_limit=memory,
            pids_limit=limits.pids,
            nano_cpus=int(limits.cpus * 1e9),
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            read_only=True,
            tmpfs={"/tmp": f"size={limits.tmp_mb}m,mode=1777,nosuid,nodev"},
            volumes={volume.name: {"bind": self.workdir, "mode": "rw"}},
            environment={"HOME": "/tmp", "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1"},
            labels=labels,
        )
        if self._initial_files is not None:
            self._start_files = dict(self._initial_files)
        else:  # the tmpfs volume starts empty: copy the image's work tree into it
            self._start_files = self._image_files(client)
        if self._start_files:
            self._put(self._start_files)

    def _image_files(self, client: docker.DockerClient) -> dict[str, bytes]:
        """The files the image has under the work dir (from a created, never started container)."""
        import docker.errors

        probe = client.containers.create(
            self.image, ["true"], network_mode="none", labels={LABEL: "1"}
        )
        try:
            chunks, _ = probe.get_archive(self.workdir + "/.")
            return unpack_files(b"".join(chunks), strip_first=True)
        except docker.errors.NotFound:
            return {}
        finally:
            with contextlib.suppress(docker.errors.NotFound):
                probe.remove(force=True)

    def close(self) -> None:
        with self._lock:
            container, self._container = self._container, None
            if self._channel is not None:
                self._channel.close()
                self._channel = None
            volume, self._volume_name = self._volume_name, None
            client = self._client
            if client is None:
                return
            import docker.errors

            if container is not None:
                with contextlib.suppress(docker.errors.NotFound):
                    container.remove(force=True)
            if volume is not None:
                _remove_volume(client, volume)
            untrack(self)

    # ------------------------------------------------------------ commands

    def _exec(self, command: str, timeout: float) -> ExecResult:
        """Run through the command server when it runs, else with ``docker exec``."""
        with self._lock:
            channel = self._command_channel()
            if channel is None:
                return self._exec_direct(command, timeout)
            started = time.monotonic()
            result = channel.run(command, timeout, self.limits.output_bytes, WRAPPER)
            if result is None:  # the command ended the server (or the container)
                self._channel = None
                self._kill_processes()
                return ExecResult(
                    exit_code=137,
                    stdout="",
                    stderr="The command killed the sandbox's command runner (and was stopped); "
                    "the sandbox still works.",
                    duration_s=time.monotonic() - started,
                    timed_out=time.monotonic() - started >= timeout,
                )
            if result.exit_code == TIMEOUT_EXIT and result.duration_s >= timeout * 0.95:
                result = dataclasses.replace(result, timed_out=True)
            return result

    def _command_channel(self) -> CommandChannel | None:
        """The running command server, started on first use; None when it cannot start."""
        if self._channel is not None and self._channel.alive:
            return self._channel
        try:
            self._channel = CommandChannel(
                self._api(),
                self._require().id or "",
                user=COMMAND_USER,
                workdir=self.workdir,
                environment={},
            )
        except Exception:  # e.g. no process can start at the pids limit: use docker exec
            self._channel = None
        return self._channel

    def _kill_processes(self) -> None:
        """Kill every process of the command user (the command server too)."""
        container = self._require()
        self._channel = None
        try:
            result = container.exec_run(["bash", "-c", "kill -9 -1"], user=COMMAND_USER)
            if result.exit_code in (0, 1):
                return
        except Exception:
            pass
        files = self.files()
        container.restart(timeout=0)
        self._put(files)

    def _exec_direct(self, command: str, timeout: float) -> ExecResult:
        """One ``docker exec`` per command: the path when the command server cannot run."""
        with self._lock:
            container = self._require()
            api = self._api()
            started = time.monotonic()
            exec_id = api.exec_create(
                container.id,
                ["bash", "-c", WRAPPER],
                user=COMMAND_USER,
                workdir=self.workdir,
                environment={
                    "ROUNDS_CMD": command,
                    "ROUNDS_TIMEOUT": f"{timeout:g}",
                    "ROUNDS_LIMITS": "",
                },
            )["Id"]
            sock = api.exec_start(exec_id, socket=True)
            try:
                stdout, stderr, cut, overdue = _read_frames(
                    sock, started + timeout + _GRACE_S, self.limits.output_bytes
                )
                if cut or overdue:
                    self._stop_command(sock)
            finally:
                with contextlib.suppress(OSError):
                    sock.close()
            exit_code = self._exit_code(exec_id)
            duration = time.monotonic() - started
            timed_out = overdue or (exit_code == TIMEOUT_EXIT and duration >= timeout * 0.95)
            return ExecResult(
                exit_code=exit_code,
                stdout=decode_output(stdout),
                stderr=decode_output(stderr),
                duration_s=duration,
                truncated=cut,
                timed_out=timed_out,
            )

    def _exit_code(self, exec_id: str) -> int:
        api = self._api()
        for attempt in range(200):
            state = api.exec_inspect(exec_id)
            if not state.get("Running") and state.get("ExitCode") is not None:
                return int(state["ExitCode"])
            time.sleep(0.002 if attempt < 20 else 0.02)
        return -1

    def _stop_command(self, sock: Any) -> None:
        """Kill every process of the command user while draining the command's stream.

        The stream must be read to its end: docker blocks the container's other execs while
        an exec's output has nowhere to go. When the kill cannot even start (a fork bomb at
        the pids limit), the container is restarted with its work tree kept.
        """
        container = self._require()
        self._channel = None  # the kill below ends the command server too
        killed = threading.Event()

        def kill() -> None:
            with contextlib.suppress(Exception):
                result = container.exec_run(["bash", "-c", "kill -9 -1"], user=COMMAND_USER)
                if result.exit_code in (0, 1):
                    killed.set()

        killer = threading.Thread(target=kill, name=f"{self.name}-kill", daemon=True)
        killer.start()
        drained = _drain(sock, time.monotonic() + _GRACE_S)
        killer.join(_GRACE_S)
        if not (drained and killed.is_set()):
            files = self.files()
            container.restart(timeout=0)
            self._put(files)

    # ------------------------------------------------------------ files

    def _read(self, path: str) -> bytes:
        import docker.errors

        container = self._require()
        try:
            chunks, stat = container.get_archive(path)
        except docker.errors.NotFound as err:
            raise SandboxError(f"{path} does not exist.") from err
        except docker.errors.APIError as err:
            raise SandboxError(f"{path} cannot be read: {err.explanation or err}") from err
        stat = stat or {}
        mode = int(stat.get("mode", 0))
        if mode & (1 << 31):
            raise SandboxError(f"{path} is a directory, not a file.")
        if mode & (1 << 27):
            raise SandboxError(f"{path} is a symbolic link; give the file it points to.")
        if int(stat.get("size", 0)) > self.limits.file_bytes:
            raise SandboxError(
                f"{path} is {int(stat['size']):,} bytes; files over {self.limits.file_bytes:,} "
                "bytes cannot be read whole (use head, sed -n or grep)."
            )
        files = unpack_files(b"".join(chunks))
        if len(files) != 1:
            raise SandboxError(f"{path} is not a regular file.")
        return next(iter(files.values()))

    def _write(self, path: str, data: bytes) -> None:
        relative = path[len(self.workdir) + 1 :]
        if not relative:
            raise SandboxError(f"{path} is the work tree itself, not a file.")
        self._put({relative: data})

    def _put(self, files: Mapping[str, bytes]) -> None:
        import docker.errors

        container = self._require()
        try:
            ok = container.put_archive(self.workdir, pack_files(files, uid=_UID, gid=_GID))
        except docker.errors.APIError as err:
            raise SandboxError(f"Writing into {self.workdir} failed: {err.explanation}") from err
        if not ok:
            raise SandboxError(f"Writing into {self.workdir} failed.")

    def files(self) -> dict[str, bytes]:
        container = self._require()
        chunks, _ = container.get_archive(self.workdir + "/.")
        return unpack_files(b"".join(chunks), strip_first=True)

    def _restore(self, files: Mapping[str, bytes]) -> None:
        with self._lock:
            container = self._require()
            clear = f"find {self.workdir} -mindepth 1 -delete"
            try:  # the command runner kills every other process after each command
                failed = self._exec(clear, 60.0).exit_code != 0
            except Exception:
                failed = True
            if failed:  # no process could start (pids limit): a restart empties everything
                self._channel = None
                container.restart(timeout=0)
                container.exec_run(["bash", "-c", clear], user=COMMAND_USER)
            self._put(files)

    def _api(self) -> docker.APIClient:
        if self._client is None:
            raise SandboxError("The sandbox is not running; call start() first.")
        return self._client.api

    def _require(self) -> Container:
        if self._container is None:
            raise SandboxError("The sandbox is not running; call start() first.")
        return self._container


def _read_frames(sock: Any, deadline: float, cap: int) -> tuple[bytes, bytes, bool, bool]:
    """Read docker's multiplexed exec stream until it ends, the deadline passes, or a
    stream exceeds ``cap`` bytes. Returns ``(stdout, stderr, cut, overdue)``."""
    buffers = {1: bytearray(), 2: bytearray()}
    pending = bytearray()
    cut = overdue = False
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            overdue = True
            break
        ready, _, _ = select.select([sock], [], [], remaining)
        if not ready:
            overdue = True
            break
        chunk = sock.recv(65536) if hasattr(sock, "recv") else sock.read(65536)
        if not chunk:
            break
        pending += chunk
        while len(pending) >= 8:
            stream, size = struct.unpack(">BxxxL", bytes(pending[:8]))
            if len(pending) < 8 + size:
                break
            target = buffers.get(stream)
            if target is not None:
                target += pending[8 : 8 + size]
            del pending[: 8 + size]
        if any(len(b) > cap for b in buffers.values()):
            cut = True
            break
    return bytes(buffers[1][:cap]), bytes(buffers[2][:cap]), cut, overdue


def _drain(sock: Any, deadline: float) -> bool:
    """Read and discard a stream until it ends (True) or the deadline passes (False)."""
    while (remaining := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([sock], [], [], remaining)
        if ready and not (sock.recv(65536) if hasattr(sock, "recv") else sock.read(65536)):
            return True
    return False


def _remove_volume(client: docker.DockerClient, name: str) -> None:
    import docker.errors

    for _ in range(20):
        try:
            client.volumes.get(name).remove(force=True)
            return
        except docker.errors.NotFound:
            return
        except docker.errors.APIError:  # still in use while the container goes away
            time.sleep(0.1)


def labelled_containers(client: docker.DockerClient | None = None) -> list[str]:
    """Ids of every container (running or not) with the `rounds` label."""
    client = client or docker_client()
    return [c.id for c in client.containers.list(all=True, filters={"label": LABEL}) if c.id]


def prune(client: docker.DockerClient | None = None, *, pid: int | None = None) -> tuple[int, int]:
    """Remove every `rounds`-labelled container and volume (after a crash); with ``pid``,
    only those made by that process.

    Returns:
        ``(containers removed, volumes removed)``.
    """
    import docker.errors

    client = client or docker_client()
    label = LABEL if pid is None else f"{LABEL}.pid={pid}"
    containers = client.containers.list(all=True, filters={"label": label})
    for container in containers:
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True)
    volumes = client.volumes.list(filters={"label": label})
    for volume in volumes:
        _remove_volume(client, str(volume.name))
    return len(containers), len(volumes)
