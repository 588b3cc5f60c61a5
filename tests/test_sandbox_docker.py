"""The docker backend: hardening, attacks, clean-up. Needs a Docker daemon and the base image
(`.ci/run` installs docker.io, starts dockerd and runs `rounds sandbox build-image`).

The module counts `rounds`-labelled containers and volumes before and after its tests
and fails on any it leaves behind.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rounds.sandboxes import Limits, SandboxError
from rounds.sandboxes.docker_backend import DockerSandbox

pytestmark = pytest.mark.requires("docker")

LIMITS = Limits(memory_mb=256, pids=64, work_mb=32, tmp_mb=16, output_bytes=64 * 1024)


def _labelled(pid: int | None = None) -> tuple[set[str], set[str]]:
    """Ids of the labelled containers and volumes (made by process ``pid``, when given:
    other test runs on the machine may hold their own)."""
    from rounds.sandboxes.base import LABEL
    from rounds.sandboxes.docker_backend import docker_client

    client = docker_client()
    label = LABEL if pid is None else f"{LABEL}.pid={pid}"
    containers = {c.id for c in client.containers.list(all=True, filters={"label": label}) if c.id}
    volumes = {str(v.name) for v in client.volumes.list(filters={"label": label})}
    return containers, volumes


@pytest.fixture(scope="module", autouse=True)
def no_leaks() -> Iterator[None]:
    """Fail the module if it leaves a labelled container or volume behind."""
    before_containers, before_volumes = _labelled(os.getpid())
    yield
    from rounds.sandboxes.pool import close_shared_pools

    close_shared_pools()
    containers, volumes = _labelled(os.getpid())
    assert containers <= before_containers, f"leaked containers: {containers - before_containers}"
    assert volumes <= before_volumes, f"leaked volumes: {volumes - before_volumes}"


@pytest.fixture(scope="module")
def sandbox() -> Iterator[DockerSandbox]:
    box = DockerSandbox(files={"pkg/a.py": b"print('hi')\n", "README": b"r\n"}, limits=LIMITS)
    with box:
        yield box


@pytest.fixture(autouse=True)
def fresh(request: pytest.FixtureRequest) -> None:
    if "sandbox" in request.fixturenames:
        request.getfixturevalue("sandbox").reset()


def _usable(box: DockerSandbox) -> None:
    """The sandbox still runs commands, and no process outlived its command."""
    result = box.exec("python3 -c 'print(6 * 7)'; ls /proc | grep -c '^[0-9]'", timeout=20)
    assert result.exit_code == 0, result
    answer, processes = result.stdout.split()
    assert answer == "42"
    # docker-init, the keeper, and this command's wrapper, timeout, bash and ls/grep.
    assert int(processes) <= 8, result.stdout


def test_exec_reports_exit_code_streams_and_duration(sandbox: DockerSandbox) -> None:
    result = sandbox.exec("echo out; echo err >&2; exit 3")
    assert (result.exit_code, result.stdout, result.stderr) == (3, "out\n", "err\n")
    assert 0 < result.duration_s < 5 and not result.truncated and not result.timed_out


def test_hardening_non_root_no_capabilities_read_only_root(sandbox: DockerSandbox) -> None:
    result = sandbox.exec(
        "id -u; grep CapEff /proc/self/status; grep NoNewPrivs /proc/self/status; "
        "touch /etc/x 2>&1; touch /usr/x 2>&1; ls /sys/class/net"
    )
    lines = result.stdout.splitlines()
    assert lines[0] == "1000"
    assert lines[1].split() == ["CapEff:", "0000000000000000"]
    assert lines[2].split() == ["NoNewPrivs:", "1"]
    assert "Read-only file system" in lines[3] and "Read-only file system" in lines[4]
    assert lines[5:] == ["lo"]  # no network interface but loopback


def test_files_diff_and_reset(sandbox: DockerSandbox) -> None:
    sandbox.write_file("pkg/a.py", b"print('changed')\n")
    sandbox.exec("echo new > new.txt && rm README")
    assert sandbox.read_file("pkg/a.py") == b"print('changed')\n"
    patch = sandbox.diff()
    assert "-print('hi')\n+print('changed')\n" in patch
    assert "+++ b/new.txt" in patch and "--- a/README" in patch
    sandbox.reset()
    assert sandbox.files() == {"pkg/a.py": b"print('hi')\n", "README": b"r\n"}
    assert sandbox.diff() == ""


def test_file_errors_are_clear(sandbox: DockerSandbox) -> None:
    with pytest.raises(SandboxError, match="outside the work tree"):
        sandbox.read_file("../etc/passwd")
    with pytest.raises(SandboxError, match="outside the work tree"):
        sandbox.write_file("/etc/cron.d/x", b"")
    with pytest.raises(SandboxError, match="does not exist"):
        sandbox.read_file("missing.py")
    with pytest.raises(SandboxError, match="directory"):
        sandbox.read_file("pkg")
    sandbox.exec("ln -s /etc/passwd link")
    with pytest.raises(SandboxError, match="symbolic link"):
        sandbox.read_file("link")


# ------------------------------------------------------------------ attacks


def test_fork_bomb_is_contained(sandbox: DockerSandbox) -> None:
    start = time.monotonic()
    sandbox.exec(":(){ :|:& };:", timeout=5)
    assert time.monotonic() - start < 30
    _usable(sandbox)


def test_rm_rf_root_is_contained(sandbox: DockerSandbox, tmp_path: Path) -> None:
    canary = tmp_path / "canary.txt"
    canary.write_text("host file")
    result = sandbox.exec("rm -rf --no-preserve-root / 2>&1 | tail -n 3", timeout=30)
    assert "Read-only file system" in result.stdout or "Permission denied" in result.stdout
    assert canary.read_text() == "host file"
    _usable(sandbox)
    sandbox.reset()
    assert sandbox.read_file("README") == b"r\n"


def test_filling_the_disk_hits_the_work_tree_limit(sandbox: DockerSandbox) -> None:
    result = sandbox.exec(
        "dd if=/dev/zero of=big bs=1M count=500 2>&1; "
        "dd if=/dev/zero of=/tmp/big bs=1M count=500 2>&1",
        timeout=60,
    )
    assert result.stdout.count("No space left on device") == 2, result.stdout
    size = sandbox.exec("stat -c %s big")
    assert int(size.stdout) <= LIMITS.work_mb * 1024 * 1024
    _usable(sandbox)


def test_infinite_output_is_cut(sandbox: DockerSandbox) -> None:
    start = time.monotonic()
    result = sandbox.exec("yes", timeout=60)
    assert result.truncated and len(result.stdout) <= LIMITS.output_bytes
    assert time.monotonic() - start < 15
    _usable(sandbox)


def test_sleep_forever_times_out_with_its_children(sandbox: DockerSandbox) -> None:
    start = time.monotonic()
    result = sandbox.exec("sleep 1000 & setsid sleep 1000 & sleep infinity", timeout=2)
    assert result.timed_out and result.exit_code == 124
    assert time.monotonic() - start < 10
    names = sandbox.exec("cat /proc/[0-9]*/comm").stdout.split()
    assert names.count("sleep") == 1  # the container's own keeper, not the command's
    _usable(sandbox)


def test_background_processes_do_not_outlive_their_command(sandbox: DockerSandbox) -> None:
    sandbox.exec("nohup sleep 1000 >/dev/null 2>&1 < /dev/null &")
    _usable(sandbox)


def test_a_command_that_kills_every_process_leaves_the_sandbox_usable(
    sandbox: DockerSandbox,
) -> None:
    """``kill -9 -1`` also ends the in-container command runner: the command reports it, and
    the next command gets a new runner."""
    result = sandbox.exec("kill -9 -1")
    assert result.exit_code != 0
    _usable(sandbox)
    fast = [sandbox.exec("true").duration_s for _ in range(5)]
    assert min(fast) < 1.0


def test_host_files_are_not_visible(sandbox: DockerSandbox, tmp_path: Path) -> None:
    canary = tmp_path / "secret.txt"
    canary.write_text("host secret 8a7f")
    result = sandbox.exec(
        f"cat {canary} 2>&1; cat /etc/hostname; ls /root 2>&1; cat /proc/1/environ 2>&1 | head -c 0"
    )
    assert "host secret" not in result.stdout
    assert "No such file or directory" in result.stdout
    assert socket.gethostname() not in result.stdout.splitlines()[1:2] or os.environ.get("CI")
    _usable(sandbox)


def test_network_connections_fail_and_reach_nothing_on_the_host(sandbox: DockerSandbox) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(0.5)
    port = server.getsockname()[1]
    accepted: list[object] = []

    def accept() -> None:
        with contextlib.suppress(OSError):
            accepted.append(server.accept())

    listener = threading.Thread(target=accept)
    listener.start()
    try:
        result = sandbox.exec(
            f"python3 -c \"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=2)\" "
            "2>&1 | tail -n 1",
            timeout=20,
        )
    finally:
        listener.join()
        server.close()
    assert "ConnectionRefusedError" in result.stdout or "unreachable" in result.stdout
    assert not accepted
    _usable(sandbox)


def test_a_ten_megabyte_command_is_refused_before_it_runs(sandbox: DockerSandbox) -> None:
    with pytest.raises(SandboxError, match="characters long; the limit is"):
        sandbox.exec("echo " + "x" * 10_000_000)
    _usable(sandbox)


def test_memory_limit_kills_a_hog(sandbox: DockerSandbox) -> None:
    result = sandbox.exec("python3 -c 'x = bytearray(1 << 30); print(len(x))'", timeout=30)
    assert result.exit_code != 0 and str(1 << 30) not in result.stdout
    _usable(sandbox)


# ------------------------------------------------------------------ clean-up


def _run_child(code: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_sandbox_left_open_is_removed_at_interpreter_exit() -> None:
    child = _run_child(
        """
        from rounds.sandboxes.docker_backend import DockerSandbox
        box = DockerSandbox(files={"a": b"1"}).start()
        print(box.container_id, flush=True)
        """
    )
    out, err = child.communicate(timeout=120)
    assert child.returncode == 0, err
    containers, _ = _labelled()
    assert out.strip() and out.strip() not in containers


def test_a_multiprocessing_child_removes_its_sandboxes() -> None:
    child = _run_child(
        """
        import multiprocessing as mp
        from rounds.sandboxes.docker_backend import DockerSandbox

        def work(queue):
            box = DockerSandbox(files={"a": b"1"}).start()
            queue.put(box.container_id)

        if __name__ == "__main__":
            ctx = mp.get_context("fork")
            queue = ctx.Queue()
            process = ctx.Process(target=work, args=(queue,))
            process.start()
            print(queue.get(timeout=120), flush=True)
            process.join(120)
        """
    )
    out, err = child.communicate(timeout=180)
    assert child.returncode == 0, err
    containers, _ = _labelled()
    assert out.strip() and out.strip() not in containers


def test_prune_removes_what_a_crash_left_behind() -> None:
    from rounds.sandboxes.docker_backend import prune

    child = _run_child(
        """
        import time
        from rounds.sandboxes.docker_backend import DockerSandbox
        box = DockerSandbox(files={"a": b"1"}).start()
        print(box.container_id, flush=True)
        time.sleep(600)
        """
    )
    assert child.stdout is not None
    container = child.stdout.readline().strip()
    child.send_signal(signal.SIGKILL)  # no atexit, no finalizers: a crash
    child.wait(30)
    containers, _ = _labelled()
    assert container in containers
    # Only the crashed child's: other runs on this machine may hold live sandboxes.
    assert prune(pid=child.pid) == (1, 1)
    containers, volumes = _labelled()
    assert container not in containers
