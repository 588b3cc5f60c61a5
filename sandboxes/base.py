"""The :class:`Sandbox` interface every backend implements, and what backends share.

A sandbox is a work tree plus a way to run shell commands against it that
cannot reach the host: a hardened docker container (:mod:`.docker_backend`) or
a bubblewrap process (:mod:`.process_backend`). An env talks to this interface
only, so the same task runs under either backend.

Shared here, so each backend does not re-implement them: the shell wrapper that
every command runs under (a time limit on the whole process group, then a
kill of every process the command left behind), work-path checks, tar packing
of a file set, and the unified diff of the work tree against its start.
"""

from __future__ import annotations

import atexit
import contextlib
import difflib
import io
import multiprocessing.util
import os
import posixpath
import tarfile
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Self

#: The label on every container and volume `rounds` creates; `rounds sandbox prune` removes them.
LABEL = "rounds"

#: The shell wrapper every command runs under. The command arrives in ``ROUNDS_CMD``
#: (an environment variable, so no quoting can break out). ``timeout`` signals the
#: command's whole process group, then kills it a second later; ``kill -9 -1`` then
#: removes every process of the sandbox user the command left behind (``setsid``
#: escapees, ``nohup``), except this shell, unless ``ROUNDS_NO_SWEEP`` is set (the
#: docker command server sweeps itself). ``ROUNDS_LIMITS`` may hold ``ulimit`` settings
#: (the process backend's rlimits).
WRAPPER = r"""
eval "$ROUNDS_LIMITS"
timeout -k 1 "$ROUNDS_TIMEOUT" bash -c "$ROUNDS_CMD" </dev/null
rc=$?
[ -n "$ROUNDS_NO_SWEEP" ] || kill -9 -1 2>/dev/null
exit $rc
"""

#: The exit code ``timeout`` reports when it stopped the command.
TIMEOUT_EXIT = 124


class SandboxError(RuntimeError):
    """A sandbox operation failed; the message says what to do."""


class SandboxUnavailable(SandboxError):
    """The backend cannot run on this machine (no docker daemon, no bubblewrap, no image)."""


@dataclass(frozen=True)
class ExecResult:
    """What one command did."""

    exit_code: int
    stdout: str
    stderr: str
    duration_s: float
    truncated: bool = False
    """Output went past the sandbox's output cap and was cut (the command was stopped)."""
    timed_out: bool = False
    """The command ran past its timeout and was killed, with every process it started."""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


@dataclass(frozen=True)
class Limits:
    """Resource limits of one sandbox. The defaults suit small repositories and pytest."""

    memory_mb: int = 512
    cpus: float = 1.0
    pids: int = 128
    work_mb: int = 64
    """Size of the writable work tree (a tmpfs in docker); filling it fails with ENOSPC."""
    tmp_mb: int = 64
    output_bytes: int = 256 * 1024
    """Per stream: past this the command is stopped and its output marked truncated."""
    command_chars: int = 100_000
    """Longer commands are refused before they reach the sandbox."""
    max_timeout_s: float = 600.0
    file_bytes: int = 4 * 1024 * 1024
    """Largest file :meth:`Sandbox.read_file` returns."""


def work_path(workdir: str, path: str) -> str:
    """The absolute path of ``path`` inside ``workdir``, refusing anything that leaves it.

    Relative paths are taken from ``workdir``; ``..`` may not climb out of it, and an
    absolute path must lie under it.

    Raises:
        SandboxError: the path is empty, has a NUL byte or leaves the work tree.
    """
    if not path or "\x00" in path:
        raise SandboxError(f"{path!r} is not a file path; give a path inside {workdir}.")
    joined = posixpath.normpath(posixpath.join(workdir, path))
    root = posixpath.normpath(workdir)
    if joined != root and not joined.startswith(root + "/"):
        raise SandboxError(
            f"{path!r} is outside the work tree {root}; only files under it can be read or written."
        )
    return joined


def relative_path(workdir: str, path: str) -> str:
    """``path`` (inside ``workdir``) relative to it."""
    return posixpath.relpath(work_path(workdir, path), posixpath.normpath(workdir))


def pack_files(files: Mapping[str, bytes], *, uid: int, gid: int) -> bytes:
    """A tar archive of ``files`` (relative path -> content) with their directories,
    owned by ``uid:gid``, ready to extract into a work tree."""
    buffer = io.BytesIO()
    now = time.time()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        made: set[str] = set()
        for name in sorted(files):
            clean = posixpath.normpath(name)
            if clean.startswith("..") or clean.startswith("/"):
                raise SandboxError(f"{name!r} is not a relative path inside the work tree")
            parts = clean.split("/")
            for depth in range(1, len(parts)):
                folder = "/".join(parts[:depth])
                if folder not in made:
                    made.add(folder)
                    info = tarfile.TarInfo(folder)
                    info.type, info.mode, info.uid, info.gid = tarfile.DIRTYPE, 0o755, uid, gid
                    info.mtime = now
                    archive.addfile(info)
            data = files[name]
            info = tarfile.TarInfo(clean)
            info.size, info.mode, info.uid, info.gid = len(data), 0o644, uid, gid
            info.mtime = now
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def unpack_files(archive: bytes, *, strip_first: bool = False) -> dict[str, bytes]:
    """The regular files of a tar archive (relative path -> content); ``strip_first``
    drops the leading folder docker's archive API puts around a directory."""
    files: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r") as tar:
        for member in tar:
            if not member.isfile():
                continue
            name = member.name
            if strip_first:
                _, _, name = name.partition("/")
            extracted = tar.extractfile(member)
            if name and extracted is not None:
                files[name] = extracted.read()
    return files


#: Work-tree entries a diff ignores: byte-code caches and pytest's cache.
IGNORED_PARTS = ("__pycache__", ".pytest_cache")


def unified_diff(before: Mapping[str, bytes], after: Mapping[str, bytes]) -> str:
    """A ``git diff``-style patch from ``before`` to ``after`` (relative path -> content),
    which ``git apply`` accepts.

    Files under :data:`IGNORED_PARTS` are left out; binary files (with a NUL byte or
    not UTF-8) get a ``Binary files ... differ`` line.
    """
    chunks: list[str] = []
    for name in sorted(set(before) | set(after)):
        if any(part in IGNORED_PARTS for part in name.split("/")):
            continue
        old, new = before.get(name), after.get(name)
        if old == new:
            continue
        old_text, new_text = _text(old), _text(new)
        a_name = f"a/{name}" if old is not None else "/dev/null"
        b_name = f"b/{name}" if new is not None else "/dev/null"
        header = f"diff --git a/{name} b/{name}\n"
        if old is None:
            header += "new file mode 100644\n"
        elif new is None:
            header += "deleted file mode 100644\n"
        if old_text is None or new_text is None:
            chunks.append(f"{header}Binary files {a_name} and {b_name} differ\n")
            continue
        lines = difflib.unified_diff(
            old_text.splitlines(keepends=True),
            new_text.splitlines(keepends=True),
            fromfile=a_name,
            tofile=b_name,
        )
        body = "".join(line if line.endswith("\n") else line + "\n" for line in lines)
        chunks.append(header + body)
    return "".join(chunks)


def _text(data: bytes | None) -> str | None:
    if data is None:
        return ""
    if b"\x00" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def decode_output(data: bytes) -> str:
    """Command output as text; bytes that are not UTF-8 become U+FFFD."""
    return data.decode("utf-8", "replace")


class Sandbox(ABC):
    """A work tree and a shell that cannot reach the host.

    Lifecycle: :meth:`start` (or ``with``), any number of :meth:`exec`,
    :meth:`read_file`, :meth:`write_file`, :meth:`diff`, :meth:`reset`, then
    :meth:`close`, which always removes everything the sandbox created.

    Args:
        files: the work tree's files at start (relative path -> content); ``None`` keeps
            what the backend's image has in the work dir.
        workdir: where the work tree is, as commands see it.
        limits: resource limits.
    """

    backend: str = ""

    def __init__(
        self,
        *,
        files: Mapping[str, bytes] | None = None,
        workdir: str = "/work",
        limits: Limits | None = None,
    ) -> None:
        self.workdir = posixpath.normpath(workdir)
        self.limits = limits or Limits()
        self._initial_files = dict(files) if files is not None else None
        self._start_files: dict[str, bytes] = {}

    # ------------------------------------------------------------ lifecycle

    @abstractmethod
    def start(self) -> Self:
        """Create the sandbox and lay out the work tree; returns ``self``."""

    @abstractmethod
    def close(self) -> None:
        """Stop every process and remove everything the sandbox created. Idempotent."""

    @property
    @abstractmethod
    def running(self) -> bool:
        """Started and not closed."""

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # ------------------------------------------------------------ commands

    def exec(self, command: str, timeout: float = 30.0) -> ExecResult:
        """Run ``command`` with ``bash -c`` in the work dir, as the unprivileged sandbox user.

        The command and everything it starts is killed after ``timeout`` seconds; output
        past :attr:`Limits.output_bytes` stops it. Processes it leaves behind are killed.

        Raises:
            SandboxError: the command is longer than :attr:`Limits.command_chars`, or the
                sandbox is not running.
        """
        if not self.running:
            raise SandboxError("The sandbox is not running; call start() first.")
        if len(command) > self.limits.command_chars:
            raise SandboxError(
                f"The command is {len(command):,} characters long; the limit is "
                f"{self.limits.command_chars:,}. Write long content to a file in smaller pieces."
            )
        if "\x00" in command:
            raise SandboxError("The command contains a NUL byte; remove it.")
        timeout = max(1.0, min(float(timeout), self.limits.max_timeout_s))
        return self._exec(command, timeout)

    @abstractmethod
    def _exec(self, command: str, timeout: float) -> ExecResult:
        """Run a checked command."""

    # ------------------------------------------------------------ files

    def read_file(self, path: str) -> bytes:
        """The content of a file in the work tree.

        Raises:
            SandboxError: the path leaves the work tree, is missing, is not a regular
                file, or is larger than :attr:`Limits.file_bytes`.
        """
        return self._read(work_path(self.workdir, path))

    def write_file(self, path: str, data: bytes) -> None:
        """Create or replace a file in the work tree (and its folders).

        Raises:
            SandboxError: the path leaves the work tree or the write failed.
        """
        self._write(work_path(self.workdir, path), data)

    @abstractmethod
    def _read(self, path: str) -> bytes: ...

    @abstractmethod
    def _write(self, path: str, data: bytes) -> None: ...

    @abstractmethod
    def files(self) -> dict[str, bytes]:
        """Every regular file of the work tree now (relative path -> content)."""

    @property
    def start_files(self) -> dict[str, bytes]:
        """The work tree's files at start (or the last :meth:`reset`), a copy."""
        return dict(self._start_files)

    def diff(self) -> str:
        """The work tree's changes since start (or the last :meth:`reset`) as a unified diff."""
        return unified_diff(self._start_files, self.files())

    # ------------------------------------------------------------ reset

    def reset(self, files: Mapping[str, bytes] | None = None) -> None:
        """Return the work tree to its start and kill every process.

        With ``files``, the work tree becomes exactly these files and they are the new
        start (a pool hands one warm sandbox from task to task this way).
        """
        if not self.running:
            raise SandboxError("The sandbox is not running; call start() first.")
        if files is not None:
            self._start_files = dict(files)
        self._restore(self._start_files)

    @abstractmethod
    def _restore(self, files: Mapping[str, bytes]) -> None:
        """Kill every sandbox process, empty the work tree, write ``files``."""


# ------------------------------------------------------------ removal at exit

#: Started sandboxes not yet closed. Strong references: a sandbox dropped without close()
#: must still be found and removed at exit.
_LIVE: set[Sandbox] = set()
_LIVE_LOCK = threading.Lock()


def track(sandbox: Sandbox) -> None:
    """Remember a started sandbox so that :func:`close_live_sandboxes` removes it at exit."""
    with _LIVE_LOCK:
        _LIVE.add(sandbox)


def untrack(sandbox: Sandbox) -> None:
    with _LIVE_LOCK:
        _LIVE.discard(sandbox)


@atexit.register
def close_live_sandboxes() -> None:
    """Close every sandbox this process started and has not closed (interpreter exit)."""
    with _LIVE_LOCK:
        live = list(_LIVE)
    for sandbox in live:
        with contextlib.suppress(Exception):
            sandbox.close()


def _forget_parent_sandboxes() -> None:
    """In a forked child: the parent's sandboxes are the parent's to close, not ours."""
    global _LIVE_LOCK
    _LIVE_LOCK = threading.Lock()
    _LIVE.clear()


class _ForkAnchor:
    """A weak-referenceable object for multiprocessing's after-fork registry."""


_FORK_ANCHOR = _ForkAnchor()
os.register_at_fork(after_in_child=_forget_parent_sandboxes)
# A multiprocessing child (fork start method) ends with os._exit, which skips atexit; its
# own exit runs multiprocessing's finalizers, so the clean-up is registered there too.
multiprocessing.util.register_after_fork(
    _FORK_ANCHOR,
    lambda _: multiprocessing.util.Finalize(None, close_live_sandboxes, exitpriority=10),
)
