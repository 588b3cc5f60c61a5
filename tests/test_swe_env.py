"""``rounds/SWE-v0`` in docker sandboxes: tools, grading, rewards and gating, baselines.

The envs share one warm sandbox pool (module-scoped), as a trainer's envs would.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

import rounds  # noqa: F401  (registers the envs)
from rounds.envs.swe.env import SWEEnv
from rounds.envs.swe.tasks import bundled_tasks

pytestmark = pytest.mark.requires("docker")

TASK = "pager-last-page"


def call(name: str, **arguments: Any) -> str:
    return json.dumps({"name": name, "arguments": arguments})


@pytest.fixture(scope="module", autouse=True)
def release_pools() -> Iterator[None]:
    yield
    from rounds.sandboxes.pool import close_shared_pools

    close_shared_pools()
    from rounds.sandboxes.base import LABEL
    from rounds.sandboxes.docker_backend import docker_client

    mine = docker_client().containers.list(
        all=True, filters={"label": f"{LABEL}.pid={os.getpid()}"}
    )
    assert not mine, f"leaked containers: {[c.name for c in mine]}"


@pytest.fixture(scope="module")
def env() -> Iterator[SWEEnv]:
    made = gym.make("rounds/SWE-v0", backend="docker")
    yield made.unwrapped  # type: ignore[misc]
    made.close()


def play(env: SWEEnv, policy: str, task_id: str) -> tuple[float, dict[str, Any], int]:
    env.reset(options={"task_id": task_id})
    act = env.scripted_policies()[policy]
    rng = np.random.default_rng(0)
    total, done, info = 0.0, False, {}
    while not done:
        _, reward, terminated, truncated, info = env.step(act(env, rng))
        total += float(reward)
        done = terminated or truncated
    return total, info, env.turn


def test_check_env_and_reset_determinism() -> None:
    from gymnasium.utils.env_checker import check_env

    made = gym.make("rounds/SWE-v0", backend="docker")
    try:
        check_env(made.unwrapped)
        first, info = made.reset(seed=7)
        again, _ = made.reset(seed=7)
        assert first == again and info["task_id"] == made.reset(seed=7)[1]["task_id"]
        assert "Issue:" in first and "Files:" in first
    finally:
        made.close()


def test_reset_hides_the_hidden_tests(env: SWEEnv) -> None:
    observation, info = env.reset(options={"task_id": TASK})
    assert "test_issue" not in observation
    obs, *_ = env.step("bash: ls -R tests; grep -rl partial_last_page . || echo none")
    assert "test_issue" not in obs and obs.rstrip().endswith("none")
    listing = env.sandbox.files()  # type: ignore[union-attr]
    assert "tests/test_issue.py" not in listing and "tests/test_core.py" in listing


def test_view_edit_search_and_bash(env: SWEEnv) -> None:
    env.reset(options={"task_id": TASK})
    obs, reward, *_, info = env.step(call("view", path="pager/core.py", start_line=12, end_line=13))
    assert obs.splitlines() == [
        "    12\t    def num_pages(self):",
        "    13\t        return len(self.items) // self.per_page",
    ]
    assert info["reward_components"]["valid_call"] == 0.02 and not info["invalid_action"]
    obs, *_, info = env.step("search num_pages pager/")
    assert "pager/core.py:12:" in obs
    obs, *_, info = env.step("insert pager/core.py 0\n<new>\n# Pagination helpers.\n</new>")
    assert "Edited pager/core.py" in obs and info["reward_components"]["file_modified"] == 0.05
    obs, *_, info = env.step("bash: head -n 1 pager/core.py && python3 -m pytest -q")
    assert obs.startswith("exit code 0") and "# Pagination helpers." in obs
    assert info["reward_components"]["tests_run"] == 0.05
    assert info["reward_components"]["exit_ok"] == 0.02
    obs, *_, info = env.step(call("edit", command="create", path="notes/todo.txt", new_str="x\n"))
    assert env.sandbox.read_file("notes/todo.txt") == b"x\n"  # type: ignore[union-attr]


def test_edit_errors_are_clear_and_change_nothing(env: SWEEnv) -> None:
    env.reset(options={"task_id": TASK})
    before = env.sandbox.files()  # type: ignore[union-attr]
    cases = {
        call("edit", path="pager/core.py", old_str="no such text", new_str="x"): "was not found",
        call("edit", path="pager/core.py", old_str="self", new_str="me"): "occurs",
        call("edit", path="../../etc/passwd", old_str="root", new_str="x"): "outside the work tree",
        call("edit", path="/etc/hosts", command="create", new_str="x"): "outside the work tree",
        call(
            "edit", command="insert", path="pager/core.py", insert_line=999, new_str="x"
        ): "insert_line",
        call("view", path="missing.py"): "does not exist",
    }
    for action, message in cases.items():
        obs, reward, terminated, _, info = env.step(action)
        assert message in obs, (action, obs)
        assert info["invalid_action"] and info["reward_components"]["format"] == -0.1
        assert info["reward_components"]["valid_call"] == 0.0 and not terminated
    assert env.sandbox.files() == before  # type: ignore[union-attr]


def test_binary_files_and_long_outputs(env: SWEEnv) -> None:
    env.reset(options={"task_id": TASK})
    env.step("bash: head -c 2000 /dev/urandom > blob.bin; printf '\\x00' >> blob.bin")
    obs, *_, info = env.step(call("view", path="blob.bin"))
    assert "binary file" in obs and info["invalid_action"]
    obs, *_ = env.step("bash: seq 1 30000")
    assert "characters cut from the middle" in obs and len(obs) < 9000
    assert obs.rstrip().endswith("30000")
    obs, *_ = env.step(call("bash", command="yes", timeout=30))
    assert "the command was stopped" in obs
    obs, *_ = env.step(call("bash", command="sleep 100", timeout=1))
    assert "timeout and was killed" in obs
    obs, *_ = env.step(call("bash", command=":(){ :|:& };:", timeout=3))
    obs, *_ = env.step("bash: echo still here")
    assert "still here" in obs


def test_outcome_levels(env: SWEEnv) -> None:
    _, info, _ = play(env, "noop", TASK)
    assert info["outcome"] == 0.1 and info["metrics"]["empty_patch"] == 1.0
    env.reset(options={"task_id": TASK})
    env.step(call("edit", path="pager/core.py", old_str="// self.per_page", new_str="// 2"))
    obs, _, terminated, _, info = env.step("submit")
    assert terminated and info["outcome"] == 0.2 and info["metrics"]["resolved"] == 0.0
    assert 0 < info["metrics"]["tests_passed"] < 1 and "hidden tests fail" in obs
    truncating = SWEEnv(backend="docker", max_turns=2)
    try:
        truncating.reset(options={"task_id": TASK})
        truncating.step("bash: ls")
        _, _, terminated, truncated, info = truncating.step("bash: ls")
        assert truncated and not terminated and info["outcome"] == 0.0
        assert info["metrics"]["submitted"] == 0.0
    finally:
        truncating.close()


def test_a_planted_conftest_does_not_pass_the_hidden_tests(env: SWEEnv) -> None:
    env.reset(options={"task_id": TASK})
    conftest = (
        "import pytest\n@pytest.hookimpl(hookwrapper=True)\n"
        "def pytest_runtest_makereport(item, call):\n"
        "    outcome = yield\n    outcome.get_result().outcome = 'passed'\n"
    )
    env.step(call("edit", command="create", path="conftest.py", new_str=conftest))
    env.step(
        call("edit", command="create", path="tests/test_issue.py", new_str="def test_x(): pass\n")
    )
    _, _, _, _, info = env.step("submit")
    assert info["metrics"]["resolved"] == 0.0 and info["outcome"] == 0.2


def test_gating_stops_busy_farming_while_reference_earns_most() -> None:
    totals: dict[tuple[str, str], float] = {}
    for shaping in ("direct", "gated"):
        env = SWEEnv(backend="docker", shaping=shaping, max_turns=14)
        try:
            for policy in ("reference", "noop", "busy"):
                total, info, _ = play(env, policy, TASK)
                totals[shaping, policy] = total
                assert info["outcome"] == (1.0 if policy == "reference" else 0.1)
        finally:
            env.close()
    assert totals["direct", "busy"] > totals["direct", "noop"]
    assert totals["gated", "busy"] <= totals["gated", "noop"]
    for shaping in ("direct", "gated"):
        assert totals[shaping, "reference"] > max(totals[shaping, "busy"], totals[shaping, "noop"])
    # Gating withholds immediate rewards until the outcome is known, then pays them in full.
    assert totals["gated", "reference"] == pytest.approx(totals["direct", "reference"])


def test_gated_rewards_match_rounds_shaping_on_the_recorded_components(env: SWEEnv) -> None:
    """The env's gated rewards are what ``rounds.shaping`` computes from the recorded raw
    components, so a trainer can re-shape recorded episodes (direct or gated) itself."""
    from rounds.records import Episode, Turn
    from rounds.shaping import RewardShaping

    for policy, outcome in (("busy", 0.1), ("reference", 1.0)):
        env.reset(options={"task_id": TASK})
        act = env.scripted_policies()[policy]
        rng = np.random.default_rng(0)
        turns, rewards, done, info = [], [], False, {}
        while not done and len(turns) < 6:
            action = act(env, rng) if len(turns) < 5 else call("submit")
            _, reward, terminated, truncated, info = env.step(action)
            done = terminated or truncated
            rewards.append(float(reward))
            turns.append(
                Turn(
                    index=len(turns),
                    observation="",
                    action=action,
                    reward_components=info["reward_components"],
                )
            )
        assert done and info["outcome"] == outcome
        assert rewards[:-1] == [0.0] * (len(rewards) - 1)  # withheld until the outcome is known
        episode = Episode(env_id="rounds/SWE-v0", turns=turns, meta=env.episode_meta())
        gated = RewardShaping(gate_threshold=env.gate).shape(episode)
        direct = RewardShaping().shape(episode)
        assert sum(rewards) == pytest.approx(gated.total)
        assert gated.outcome == pytest.approx(outcome)
        assert (direct.total > gated.total) == (policy == "busy")


@pytest.mark.slow
def test_reference_resolves_every_bundled_task_and_noop_none() -> None:
    env = SWEEnv(backend="docker", shaping="direct")
    try:
        for task in bundled_tasks():
            _, info, turns = play(env, "reference", task.instance_id)
            assert info["metrics"]["resolved"] == 1.0, (task.instance_id, info)
            assert info["metrics"]["modified"] == 1.0 and turns == len(task.fix) + 3
        _, info, _ = play(env, "noop", bundled_tasks()[1].instance_id)
        assert info["metrics"]["resolved"] == 0.0
    finally:
        env.close()


def test_snapshot_and_restore_replay_the_same_episode(env: SWEEnv) -> None:
    env.reset(options={"task_id": TASK})
    env.step(call("edit", path="pager/core.py", old_str="// self.per_page", new_str="// 3"))
    snapshot = env.snapshot()
    first = env.step(
        "bash: python3 -c 'from pager import Paginator; print(Paginator(range(9), 1).num_pages)'"
    )
    env.step("bash: rm -rf pager")
    env.restore(snapshot)
    again = env.step(
        "bash: python3 -c 'from pager import Paginator; print(Paginator(range(9), 1).num_pages)'"
    )
    assert first[0].splitlines()[1:] == again[0].splitlines()[1:] == ["3"]
    assert first[1] == again[1] and env.turn == 2


@pytest.mark.slow
def test_swebench_records_run_in_their_own_image(tmp_path: Any) -> None:
    """A SWE-bench-style record: the repository is a git checkout in the image at /testbed,
    the hidden tests arrive as ``test_patch`` at submission, the patch is ``git diff``."""
    from rounds.sandboxes.base import unified_diff
    from rounds.sandboxes.images import build_task_image

    task = bundled_tasks()[0]
    assert task.files is not None
    repo = {name: text.encode() for name, text in task.files.items()}
    tag = "rounds-test/swebench-pager:1"
    build_task_image(
        tag,
        repo,
        workdir="/testbed",
        setup=["git init -q && git add -A && git -c user.name=t -c user.email=t@t commit -qm base"],
    )
    test_patch = unified_diff({}, {n: t.encode() for n, t in task.test_files.items()})
    record = {
        "repo": "example/pager",
        "instance_id": "example__pager-1",
        "base_commit": "HEAD",
        "problem_statement": task.problem_statement,
        "FAIL_TO_PASS": json.dumps(list(task.fail_to_pass)),
        "PASS_TO_PASS": json.dumps(list(task.pass_to_pass)),
        "image_name": tag,
        "test_patch": test_patch,
    }
    path = tmp_path / "records.jsonl"
    path.write_text(json.dumps(record) + "\n")
    made = gym.make("rounds/SWE-v0", tasks=str(path), backend="docker")
    try:
        observation, _ = made.reset(seed=0)
        assert "Repository: example/pager (in /testbed)" in observation
        assert "pager/core.py" in observation and "test_issue" not in observation
        fix = task.fix[0]
        made.step(call("edit", path=fix.path, old_str=fix.old, new_str=fix.new))
        _, _, terminated, _, info = made.step("submit")
        assert terminated and info["metrics"]["resolved"] == 1.0, info
        assert "-        return len(self.items) // self.per_page" in info["patch"]
    finally:
        made.close()


@pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")
def test_closing_during_a_step_does_not_hand_the_busy_sandbox_on() -> None:
    """A trainer that times a step out closes the env from another thread: the sandbox the
    step still uses is closed, not returned to the pool for the next episode."""
    import threading

    env = SWEEnv(backend="docker")
    env.reset(options={"task_id": TASK})
    sandbox = env.sandbox
    assert sandbox is not None
    stepping = threading.Thread(target=env.step, args=(call("bash", command="sleep 2"),))
    stepping.start()
    while not env._stepping:
        pass
    env.close()
    stepping.join(30)
    assert not sandbox.running
    assert env._pool is not None and sandbox not in env._pool._idle


@pytest.mark.requires("bubblewrap")
def test_reference_resolves_under_the_process_backend() -> None:
    env = SWEEnv(backend="process")
    try:
        total, info, _ = play(env, "reference", "csvlite-quoted-commas")
        assert info["metrics"]["resolved"] == 1.0 and total == pytest.approx(
            1.0 + 0.02 * 4 + 0.05 * 2 + 0.02
        )
    finally:
        env.close()
