"""The ``process`` backend: bubblewrap and rlimits, for machines without Docker.

Each command runs in a fresh ``bwrap`` (Debian's ``bubblewrap``) with its own
user, pid, network, IPC and UTS namespaces: no network at all, the host's
``/usr`` bound read-only, a minimal generated ``/etc``, a private ``/tmp``,
and the work tree (a temporary folder on the host) as the only writable
place. rlimits cap processes, address space, file size and open files. When
run as root it first drops to ``nobody`` on the host, so the process limit
holds (the kernel exempts root from it).

Weaker than docker, and documented so: no memory cgroup (an address-space
limit instead), no disk quota beyond the per-file size limit, and the host's
``/usr`` is visible read-only. Where neither a Docker daemon nor ``bwrap``
exists this backend refuses to start rather than run commands unconfined.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Self

from rounds.sandboxes.base import (
    TIMEOUT_EXIT,
    WRAPPER,
    ExecResult,
    Limits,
    Sandbox,
    SandboxError,
    SandboxUnavailable,
    decode_output,
    track,
    untrack,
)

#: The host uid/gid commands run as when `rounds` itself runs as root (``nobody``).
_HOST_NOBODY = 65534
#: The uid/gid commands see inside the sandbox.
_INNER_UID = 1000
#: Host paths bound read-only into every sandbox (when they exist).
_SYSTEM_BINDS = ("/usr", "/etc/alternatives", "/etc/ld.so.cache", "/etc/ssl/certs")


def bwrap_path() -> str | None:
    """The bubblewrap binary, or None."""
    return shutil.which("bwrap")


class ProcessSandbox(Sandbox):
    """A sandbox of bubblewrap processes over a temporary work tree (see the module docstring).

    Args:
        files: the work tree at start (default: empty).
        workdir: the work tree's path as commands see it.
        limits: resource limits (``memory_mb`` becomes the address-space limit).
    """

    backend = "process"

    def __init__(
        self,
        *,
        files: Mapping[str, bytes] | None = None,
        workdir: str = "/work",
        limits: Limits | None = None,
    ) -> None:
        super().__init__(files=files, workdir=workdir, limits=limits)
        self._root: Path | None = None
        self._lock = threading.RLock()

    @property
    def running(self) -> bool:
        return self._root is not None

    @property
    def host_work_tree(self) -> Path:
        """The host folder behind the work tree."""
        if self._root is None:
            raise SandboxError("The sandbox is not running; call start() first.")
        return self._root / "work"

    def start(self) -> Self:
        with self._lock:
            if self._root is not None:
                return self
            if bwrap_path() is None:
                raise SandboxUnavailable(
                    "The process backend needs bubblewrap (Debian: apt-get install bubblewrap); "
                    "without it (and without docker) commands would run unconfined, so no "
                    "sandbox is started."
                )
            root = Path(tempfile.mkdtemp(prefix="rounds-sandbox-"))
            track(self)
            root.chmod(0o755)  # the unprivileged host user must reach work/ and etc/
            self._root = root
            (root / "work").mkdir()
            etc = root / "etc"
            etc.mkdir()
            (etc / "passwd").write_text(
                f"root:x:0:0:root:/root:/bin/sh\nrounds:x:{_INNER_UID}:{_INNER_UID}:rounds:/work:/bin/bash\n"
                "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
            )
            (etc / "group").write_text(f"root:x:0:\nrounds:x:{_INNER_UID}:\nnogroup:x:65534:\n")
            if os.geteuid() == 0:
                os.chown(root / "work", _HOST_NOBODY, _HOST_NOBODY)
            self._start_files = dict(self._initial_files or {})
            self._restore(self._start_files)
            return self

    def close(self) -> None:
        with self._lock:
            root, self._root = self._root, None
            if root is not None:
                shutil.rmtree(root, ignore_errors=True)
            untrack(self)

    # ------------------------------------------------------------ commands

    def _bwrap_command(self) -> list[str]:
        root = self._root
        assert root is not None
        argv = [
            bwrap_path() or "bwrap",
            "--unshare-all",
            "--die-with-parent",
            "--new-session",
            "--uid",
            str(_INNER_UID),
            "--gid",
            str(_INNER_UID),
            "--hostname",
            "sandbox",
        ]
        for path in _SYSTEM_BINDS:
            if Path(path).exists():
                argv += ["--ro-bind", path, path]
        for link in ("bin", "lib", "lib64", "sbin"):
            if Path(f"/usr/{link}").exists():
                argv += ["--symlink", f"usr/{link}", f"/{link}"]
        argv += [
            "--ro-bind",
            str(root / "etc" / "passwd"),
            "/etc/passwd",
            "--ro-bind",
            str(root / "etc" / "group"),
            "/etc/group",
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--tmpfs",
            "/tmp",
            "--bind",
            str(root / "work"),
            self.workdir,
            "--chdir",
            self.workdir,
            "--setenv",
            "HOME",
            "/tmp",
            "--setenv",
            "PATH",
            "/usr/local/bin:/usr/bin:/bin",
            "--setenv",
            "LANG",
            "C.UTF-8",
            "--setenv",
            "PYTHONDONTWRITEBYTECODE",
            "1",
            "--",
            "bash",
            "-c",
            WRAPPER,
        ]
        return argv

    def _limits_script(self) -> str:
        limits = self.limits
        return (
            f"ulimit -u {limits.pids} -v {limits.memory_mb * 1024} "
            f"-f {limits.work_mb * 1024} -n 256 -c 0 2>/dev/null"
        )

    def _exec(self, command: str, timeout: float) -> ExecResult:
        with self._lock:
            if self._root is None:
                raise SandboxError("The sandbox is not running; call start() first.")
            env = {
                "ROUNDS_CMD": command,
                "ROUNDS_TIMEOUT": f"{timeout:g}",
                "ROUNDS_LIMITS": self._limits_script(),
                "PATH": "/usr/bin:/bin",
            }
            as_root = os.geteuid() == 0
            started = time.monotonic()
            process = subprocess.Popen(
                self._bwrap_command(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                start_new_session=True,
                user=_HOST_NOBODY if as_root else None,
                group=_HOST_NOBODY if as_root else None,
                extra_groups=[] if as_root else None,
            )
            stdout, stderr, cut, overdue = _read_pipes(
                process, started + timeout + 5.0, self.limits.output_bytes
            )
            if cut or overdue:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
            exit_code = process.wait()
            duration = time.monotonic() - started
            return ExecResult(
                exit_code=exit_code,
                stdout=decode_output(stdout),
                stderr=decode_output(stderr),
                duration_s=duration,
                truncated=cut,
                timed_out=overdue or (exit_code == TIMEOUT_EXIT and duration >= timeout * 0.95),
            )

    # ------------------------------------------------------------ files

    def _host_path(self, path: str) -> Path:
        relative = path[len(self.workdir) :].lstrip("/")
        target = self.host_work_tree / relative
        # A symbolic link made inside the sandbox must not lead the host out of the work tree.
        resolved = target.resolve()
        tree = self.host_work_tree.resolve()
        if resolved != tree and tree not in resolved.parents:
            raise SandboxError(f"{path} leads outside the work tree (a symbolic link).")
        return target

    def _read(self, path: str) -> bytes:
        target = self._host_path(path)
        if target.is_symlink():
            raise SandboxError(f"{path} is a symbolic link; give the file it points to.")
        if target.is_dir():
            raise SandboxError(f"{path} is a directory, not a file.")
        if not target.is_file():
            raise SandboxError(f"{path} does not exist.")
        size = target.stat().st_size
        if size > self.limits.file_bytes:
            raise SandboxError(
                f"{path} is {size:,} bytes; files over {self.limits.file_bytes:,} bytes cannot be "
                "read whole (use head, sed -n or grep)."
            )
        return target.read_bytes()

    def _write(self, path: str, data: bytes) -> None:
        target = self._host_path(path)
        if target == self.host_work_tree:
            raise SandboxError(f"{path} is the work tree itself, not a file.")
        if target.is_symlink() or target.is_dir():
            raise SandboxError(f"{path} is a directory or a symbolic link, not a file.")
        self._write_host(target, data)

    def _write_host(self, target: Path, data: bytes) -> None:
        tree = self.host_work_tree
        folder = target.parent
        folder.mkdir(parents=True, exist_ok=True)
        partial = folder / f".{target.name}.rounds-partial"
        partial.write_bytes(data)
        os.replace(partial, target)
        if os.geteuid() == 0:
            for path in [target, *target.parents]:
                if path == tree or tree not in path.parents:
                    break
                os.chown(path, _HOST_NOBODY, _HOST_NOBODY, follow_symlinks=False)

    def files(self) -> dict[str, bytes]:
        tree = self.host_work_tree
        found: dict[str, bytes] = {}
        for folder, _dirs, names in os.walk(tree, followlinks=False):
            for name in names:
                path = Path(folder) / name
                if path.is_file() and not path.is_symlink():
                    found[path.relative_to(tree).as_posix()] = path.read_bytes()
        return found

    def _restore(self, files: Mapping[str, bytes]) -> None:
        with self._lock:
            tree = self.host_work_tree
            for entry in list(tree.iterdir()):
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
            for name, data in files.items():
                target = tree / name
                if tree.resolve() not in target.resolve().parents:
                    raise SandboxError(f"{name!r} is not a relative path inside the work tree")
                self._write_host(target, data)


def _read_pipes(
    process: subprocess.Popen[bytes], deadline: float, cap: int
) -> tuple[bytes, bytes, bool, bool]:
    """Read a process's stdout and stderr until both close, the deadline passes, or one
    exceeds ``cap`` bytes. Returns ``(stdout, stderr, cut, overdue)``."""
    assert process.stdout is not None and process.stderr is not None
    buffers: dict[int, bytearray] = {
        process.stdout.fileno(): bytearray(),
        process.stderr.fileno(): bytearray(),
    }
    cut = overdue = False
    with selectors.DefaultSelector() as selector:
        for fd in buffers:
            selector.register(fd, selectors.EVENT_READ)
        while selector.get_map():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                overdue = True
                break
            for key, _ in selector.select(remaining):
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    selector.unregister(key.fd)
                    continue
                buffers[key.fd] += chunk
                if len(buffers[key.fd]) > cap:
                    cut = True
            if cut:
                break
    out, err = buffers[process.stdout.fileno()], buffers[process.stderr.fileno()]
    process.stdout.close()
    process.stderr.close()
    return bytes(out[:cap]), bytes(err[:cap]), cut, overdue
