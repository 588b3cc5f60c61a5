"""The sandbox interface's shared parts, the pool, and refusal without a backend.

Backend behaviour and attacks: tests/test_sandbox_docker.py and tests/test_sandbox_process.py.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping

import pytest

from rounds.sandboxes import SandboxError, SandboxPool, SandboxUnavailable, resolve_backend
from rounds.sandboxes.base import pack_files, unified_diff, unpack_files, work_path
from rounds.sandboxes.process_backend import ProcessSandbox


def test_work_path_keeps_paths_inside_the_work_tree() -> None:
    assert work_path("/work", "pkg/a.py") == "/work/pkg/a.py"
    assert work_path("/work", "/work/pkg/../b.py") == "/work/b.py"
    assert work_path("/work", "./") == "/work"
    for escape in ("../etc/passwd", "/etc/passwd", "pkg/../../x", "/workx/a", "a\x00b", ""):
        with pytest.raises(SandboxError):
            work_path("/work", escape)


def test_pack_and_unpack_round_trip() -> None:
    files = {"a.py": b"x = 1\n", "pkg/sub/b.txt": b"\x00\x01", "empty": b""}
    assert unpack_files(pack_files(files, uid=1000, gid=1000)) == files
    with pytest.raises(SandboxError):
        pack_files({"../evil": b""}, uid=0, gid=0)


def test_unified_diff_reports_changes_additions_deletions_and_binaries() -> None:
    before = {"a.py": b"one\ntwo\n", "gone.txt": b"bye\n", "blob": b"\x00\x01"}
    after = {"a.py": b"one\nTWO\n", "new.txt": b"hi", "blob": b"\x00\x02", "x/__pycache__/c": b"."}
    patch = unified_diff(before, after)
    assert "--- a/a.py\n+++ b/a.py\n" in patch and "-two\n+TWO\n" in patch
    assert "--- /dev/null\n+++ b/new.txt\n" in patch and "+hi\n" in patch
    assert "--- a/gone.txt\n+++ /dev/null\n" in patch
    assert "Binary files a/blob and b/blob differ" in patch
    assert "__pycache__" not in patch
    assert unified_diff(before, before) == ""


def test_resolve_backend_refuses_to_run_unconfined(monkeypatch: pytest.MonkeyPatch) -> None:
    import rounds.sandboxes.docker_backend as docker_backend
    import rounds.sandboxes.process_backend as process_backend

    monkeypatch.setattr(docker_backend, "docker_available", lambda: False)
    monkeypatch.setattr(process_backend, "bwrap_path", lambda: None)
    with pytest.raises(SandboxUnavailable, match="never run unconfined"):
        resolve_backend("auto")
    with pytest.raises(SandboxUnavailable, match="bubblewrap"):
        ProcessSandbox().start()
    with pytest.raises(ValueError, match="unknown sandbox backend"):
        resolve_backend("chroot")


def test_docker_backend_without_a_daemon_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    from rounds.sandboxes.docker_backend import DockerSandbox

    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    with pytest.raises(SandboxUnavailable, match="No Docker daemon answers"):
        DockerSandbox().start()


@pytest.mark.requires("bubblewrap")
def test_pool_reuses_warm_sandboxes_and_resets_them_to_each_task() -> None:
    made: list[ProcessSandbox] = []

    def factory(files: Mapping[str, bytes] | None) -> ProcessSandbox:
        made.append(ProcessSandbox(files=files))
        return made[-1]

    pool = SandboxPool(factory, max_size=2)
    try:
        first = pool.acquire({"a.txt": b"task one\n"})
        first.exec("echo scribble > a.txt; echo more > b.txt; sleep 30 &", timeout=5)
        pool.release(first)
        second = pool.acquire({"c.txt": b"task two\n"})
        assert second is first and len(made) == 1  # warm, not recreated
        assert second.files() == {"c.txt": b"task two\n"}
        assert second.diff() == ""
        third = pool.acquire({"d.txt": b"x"})
        assert third is not second and pool.leased == 2
        with pytest.raises(SandboxError, match="No sandbox came free"):
            pool.acquire(timeout=0.2)
        pool.release(third, broken=True)  # a broken one is closed, its slot freed
        assert not third.running and pool.leased == 1
    finally:
        pool.close()
        for sandbox in made:
            sandbox.close()


@pytest.mark.requires("bubblewrap")
def test_pool_is_thread_safe_and_never_hands_one_sandbox_to_two_holders() -> None:
    pool = SandboxPool(lambda files: ProcessSandbox(files=files), max_size=3)
    holders: dict[int, int] = {}
    errors: list[BaseException] = []
    lock = threading.Lock()

    def episode(worker: int) -> None:
        try:
            for round_ in range(3):
                task = {"id.txt": f"{worker}-{round_}".encode()}
                with pool.lease(task) as sandbox:
                    with lock:
                        assert id(sandbox) not in holders, "one sandbox, two holders"
                        holders[id(sandbox)] = worker
                    result = sandbox.exec("cat id.txt", timeout=10)
                    assert result.stdout == f"{worker}-{round_}"
                    time.sleep(0.01)
                    with lock:
                        del holders[id(sandbox)]
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=episode, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    pool.close()
    assert not errors, errors
    assert pool.idle == 0 and pool.leased == 0
