"""A command server inside a docker sandbox, so a warm command costs milliseconds.

``docker exec`` starts every process through the container runtime (runc),
about 50 ms and more on a loaded machine. Instead, one long-lived Python process
(:data:`SERVER`, started once with ``docker exec`` as the sandbox user) reads
one JSON request per line on its stdin and runs each command itself, with the
same rules as the exec path: the shell wrapper's time limit over the command's
process group, the output cap, and afterwards a sweep that kills every other
process of the sandbox user (the server skips only itself). It answers one JSON
line per command on stdout.

:class:`CommandChannel` is the host side, on the exec's hijacked socket. A
command that kills the server (``kill -9 -1``, ``pkill python3``) gets an error
result and the server is started again for the next command.
"""

from __future__ import annotations

import base64
import contextlib
import json
import select
import struct
import time
from typing import Any

from rounds.sandboxes.base import ExecResult, decode_output

#: The server, run as ``python3 -c SERVER``. Each request: ``{"cmd", "timeout", "cap", "env"}``;
#: each answer: ``{"rc", "out", "err" (base64), "cut", "timed_out", "seconds"}``.
SERVER = r"""
import base64, json, os, select, signal, subprocess, sys, time
ME, UID = os.getpid(), os.getuid()

def sweep():
    for _ in range(200):
        others = []
        for name in os.listdir("/proc"):
            if name.isdigit() and int(name) != ME:
                try:
                    if os.stat("/proc/" + name).st_uid == UID:
                        others.append(int(name))
                except OSError:
                    pass
        if not others:
            return
        for pid in others:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.001)

def run(request):
    started = time.monotonic()
    env = dict(os.environ, ROUNDS_CMD=request["cmd"], ROUNDS_TIMEOUT=request["timeout"])
    env.update(request.get("env") or {})
    try:
        process = subprocess.Popen(
            ["bash", "-c", request["wrapper"]], stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, start_new_session=True,
        )
    except OSError as err:
        return {"rc": 126, "out": "", "err": base64.b64encode(str(err).encode()).decode(),
                "cut": False, "timed_out": False, "seconds": time.monotonic() - started}
    cap, deadline = request["cap"], started + float(request["timeout"]) + 2
    out_fd, err_fd = process.stdout.fileno(), process.stderr.fileno()
    buffers = {out_fd: bytearray(), err_fd: bytearray()}
    open_fds, cut, overdue = set(buffers), False, False
    while open_fds:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            overdue = True
            break
        ready, _, _ = select.select(list(open_fds), [], [], remaining)
        for fd in ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                open_fds.discard(fd)
            else:
                buffers[fd] += chunk
                cut = cut or len(buffers[fd]) > cap
        if cut:
            break
    if cut or overdue:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except OSError:
            pass
    rc = process.wait()
    sweep()
    out, err = bytes(buffers[out_fd][:cap]), bytes(buffers[err_fd][:cap])
    process.stdout.close()
    process.stderr.close()
    return {"rc": rc, "cut": cut, "timed_out": overdue, "seconds": time.monotonic() - started,
            "out": base64.b64encode(out).decode(), "err": base64.b64encode(err).decode()}

def main():
    for line in sys.stdin:
        request = json.loads(line)
        answer = run(request)
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()

main()
"""


class CommandChannel:
    """The host side of a :data:`SERVER` running in a container (see the module docstring).

    Args:
        api: the Docker API client.
        container_id: the container.
        user: the sandbox user (``uid:gid``) the server and its commands run as.
        workdir: the commands' working directory.
        environment: the server's (and so the commands') environment.
    """

    def __init__(
        self,
        api: Any,
        container_id: str,
        *,
        user: str,
        workdir: str,
        environment: dict[str, str],
    ) -> None:
        exec_id = api.exec_create(
            container_id,
            ["python3", "-u", "-c", SERVER],
            stdin=True,
            user=user,
            workdir=workdir,
            environment=environment,
        )["Id"]
        self._sock = api.exec_start(exec_id, socket=True)
        self._raw = getattr(self._sock, "_sock", self._sock)
        self._pending = bytearray()
        self._lines = bytearray()
        self._errors = bytearray()
        self.alive = True

    def run(self, command: str, timeout: float, cap: int, wrapper: str) -> ExecResult | None:
        """Run one command; None when the server is gone (the command may have killed it)."""
        if not self.alive:
            return None
        started = time.monotonic()
        request = {
            "cmd": command,
            "timeout": f"{timeout:g}",
            "cap": cap,
            "wrapper": wrapper,
            "env": {"ROUNDS_NO_SWEEP": "1"},
        }
        try:
            self._raw.sendall((json.dumps(request) + "\n").encode())
            line = self._read_line(started + timeout + 10.0)
        except OSError:
            line = None
        if line is None:
            self.close()
            return None
        answer = json.loads(line)
        return ExecResult(
            exit_code=int(answer["rc"]),
            stdout=decode_output(base64.b64decode(answer["out"])),
            stderr=decode_output(base64.b64decode(answer["err"])),
            duration_s=time.monotonic() - started,
            truncated=bool(answer["cut"]),
            timed_out=bool(answer["timed_out"]),
        )

    def _read_line(self, deadline: float) -> bytes | None:
        while b"\n" not in self._lines:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            ready, _, _ = select.select([self._sock], [], [], remaining)
            if not ready:
                return None
            chunk = self._raw.recv(65536)
            if not chunk:
                return None
            self._pending += chunk
            while len(self._pending) >= 8:
                stream, size = struct.unpack(">BxxxL", bytes(self._pending[:8]))
                if len(self._pending) < 8 + size:
                    break
                target = self._lines if stream == 1 else self._errors
                target += self._pending[8 : 8 + size]
                del self._pending[: 8 + size]
        line, _, rest = bytes(self._lines).partition(b"\n")
        self._lines = bytearray(rest)
        return line

    def close(self) -> None:
        self.alive = False
        with contextlib.suppress(OSError):
            self._sock.close()
