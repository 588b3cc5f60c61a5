"""The process backend (bubblewrap + rlimits): what it contains, and its clean-up."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rounds.sandboxes import Limits, SandboxError
from rounds.sandboxes.process_backend import ProcessSandbox

pytestmark = pytest.mark.requires("bubblewrap")

LIMITS = Limits(memory_mb=512, pids=64, work_mb=32, output_bytes=64 * 1024)


@pytest.fixture(scope="module")
def sandbox() -> Iterator[ProcessSandbox]:
    with ProcessSandbox(files={"pkg/a.py": b"print('hi')\n"}, limits=LIMITS) as box:
        yield box


@pytest.fixture(autouse=True)
def fresh(sandbox: ProcessSandbox) -> None:
    sandbox.reset()


def _usable(box: ProcessSandbox) -> None:
    result = box.exec("python3 -c 'print(6 * 7)'", timeout=20)
    assert (result.exit_code, result.stdout) == (0, "42\n"), result


def test_runs_as_an_unprivileged_user_in_the_work_tree(sandbox: ProcessSandbox) -> None:
    result = sandbox.exec("id -u; pwd; python3 pkg/a.py; ls /; touch /usr/x 2>&1")
    lines = result.stdout.splitlines()
    assert lines[:3] == ["1000", "/work", "hi"]
    assert "home" not in lines and "root" not in lines  # only the binds it was given
    assert "Read-only file system" in lines[-1] or "Permission denied" in lines[-1]


def test_files_diff_and_reset(sandbox: ProcessSandbox) -> None:
    sandbox.exec("echo 'print(1)' > pkg/a.py; mkdir -p d && echo x > d/new")
    patch = sandbox.diff()
    assert "+print(1)" in patch and "+++ b/d/new" in patch
    sandbox.reset()
    assert sandbox.files() == {"pkg/a.py": b"print('hi')\n"}


def test_symbolic_links_do_not_lead_the_host_out(sandbox: ProcessSandbox) -> None:
    sandbox.exec("ln -s /etc/shadow shadow; ln -s / root")
    for path in ("shadow", "root/etc/passwd"):
        with pytest.raises(SandboxError, match="outside the work tree"):
            sandbox.read_file(path)
    with pytest.raises(SandboxError, match="outside the work tree"):
        sandbox.write_file("root/tmp/evil", b"x")
    assert not Path("/tmp/evil").exists()


def test_fork_bomb_is_contained(sandbox: ProcessSandbox) -> None:
    start = time.monotonic()
    sandbox.exec(":(){ :|:& };:", timeout=5)
    assert time.monotonic() - start < 30
    _usable(sandbox)


def test_sleep_forever_times_out(sandbox: ProcessSandbox) -> None:
    start = time.monotonic()
    result = sandbox.exec("setsid sleep 1000 & sleep infinity", timeout=2)
    assert result.timed_out
    assert time.monotonic() - start < 10
    _usable(sandbox)


def test_infinite_output_is_cut(sandbox: ProcessSandbox) -> None:
    result = sandbox.exec("yes", timeout=60)
    assert result.truncated and len(result.stdout) <= LIMITS.output_bytes
    _usable(sandbox)


def test_large_files_hit_the_file_size_limit(sandbox: ProcessSandbox) -> None:
    result = sandbox.exec("dd if=/dev/zero of=big bs=1M count=100 2>&1", timeout=60)
    assert result.exit_code != 0
    size = (sandbox.host_work_tree / "big").stat().st_size
    assert size <= LIMITS.work_mb * 1024 * 1024
    _usable(sandbox)


def test_host_files_and_network_are_out_of_reach(sandbox: ProcessSandbox, tmp_path: Path) -> None:
    canary = tmp_path / "secret.txt"
    canary.write_text("host secret 51c2")
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(0.5)
    accepted: list[object] = []

    def accept() -> None:
        with contextlib.suppress(OSError):
            accepted.append(server.accept())

    listener = threading.Thread(target=accept)
    listener.start()
    try:
        port = server.getsockname()[1]
        result = sandbox.exec(
            f"cat {canary} 2>&1; cat /etc/shadow 2>&1; "
            f"python3 -c \"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=2)\" "
            "2>&1 | tail -n 1",
            timeout=20,
        )
    finally:
        listener.join()
        server.close()
    assert "host secret" not in result.stdout
    assert "ConnectionRefusedError" in result.stdout
    assert not accepted


def test_a_ten_megabyte_command_is_refused(sandbox: ProcessSandbox) -> None:
    with pytest.raises(SandboxError, match="the limit is"):
        sandbox.exec("echo " + "x" * 10_000_000)
    _usable(sandbox)


def test_close_removes_the_work_tree() -> None:
    box = ProcessSandbox(files={"a": b"1"}).start()
    root = box.host_work_tree.parent
    assert root.exists()
    box.close()
    assert not root.exists()
    box.close()  # idempotent
    assert not any(
        p.name.startswith("rounds-sandbox-") and p == root for p in root.parent.iterdir()
    )
    assert os.path.isdir(root.parent)
