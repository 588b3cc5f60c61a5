"""Env workers (``process`` and ``ray`` backends) behind the chat loop's env interface.

One local Ray cluster for the module (2 CPUs, no dashboard, usage stats off, bound
to 127.0.0.1). Workers are killed (SIGKILL) or hung (SIGSTOP) mid-episode: only the
episodes on them end, with the reason, every episode comes back exactly once, and the
replacement is counted.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

from rounds.agents.base import Action, BaseAgent, Chat
from rounds.agents.loop import EpisodeSpec, Rollout, run_episodes
from rounds.distributed.workers import EnvWorkers, WorkerEnv

HOUSEHOLD = "rounds/Household-v0"
BACKENDS = ["process", "ray"]


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    ray = pytest.importorskip("ray")
    ray.init(
        num_cpus=2,
        resources={"browser": 2},  # a node that can run two browser envs
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        logging_level="ERROR",
        log_to_driver=False,
    )
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "ray":
        request.getfixturevalue("ray_cluster")
    return str(request.param)


class Admissible(BaseAgent):
    """Random admissible commands; on the task named in ``sabotage`` it sends its env's worker
    ``signal`` after the first turn (SIGKILL: a crash, SIGSTOP: a hang)."""

    name = "admissible"

    def __init__(self, sabotage: str | None = None, sig: int = signal.SIGKILL) -> None:
        self.sabotage = sabotage
        self.sig = sig
        self.stopped: list[int] = []

    def act(self, chat: Chat) -> Action:
        env = chat.env
        if (
            self.sabotage is not None
            and isinstance(env, WorkerEnv)
            and env.task_id == self.sabotage
            and len(chat.messages) == 4
        ):
            pid = int(env.worker.call("pid", timeout_s=10))
            self.stopped.append(pid)
            os.kill(pid, self.sig)
        commands = chat.info["admissible_commands"]
        return Action(text=str(commands[int(chat.rng.integers(len(commands)))]))


def comparable(rollout: Rollout) -> dict[str, Any]:
    """An episode's record without what differs between runs (ids, times, latencies)."""
    episode = rollout.episode
    return episode.model_dump(exclude={"id", "created_at", "turns"}) | {
        "turns": [
            t.model_dump(exclude={"latency_s"})
            | {"info": {k: v for k, v in t.info.items() if k != "env_latency_s"}}
            for t in episode.turns
        ]
    }


def specs(n: int = 4) -> list[EpisodeSpec]:
    ids = gym.make(HOUSEHOLD).unwrapped.task_ids("test")
    return [EpisodeSpec(task_id=ids[i], seed=i, agent_seed=i) for i in range(n)]


def run(make_env: Any, agent: BaseAgent, step_timeout_s: float = 60.0) -> list[Rollout]:
    return list(
        run_episodes(
            make_env,
            agent,
            specs(),
            env_id=HOUSEHOLD,
            concurrency=2,
            step_timeout_s=step_timeout_s,
        )
    )


@pytest.fixture(scope="module")
def local_episodes() -> dict[str | None, dict[str, Any]]:
    rollouts = run(lambda: gym.make(HOUSEHOLD, split="test"), Admissible())
    return {r.episode.task_id: comparable(r) for r in rollouts}


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSTOP], ids=["killed", "hung"])
def test_a_worker_lost_mid_episode_ends_only_its_episode(
    backend: str, sig: int, local_episodes: dict[str | None, dict[str, Any]]
) -> None:
    target = specs()[1].task_id
    agent = Admissible(sabotage=target, sig=sig)
    try:
        with EnvWorkers(backend, 2, cpus_per_worker=0.5) as workers:
            rollouts = run(
                lambda: workers.make(HOUSEHOLD, split="test"),
                agent,
                step_timeout_s=5.0 if sig == signal.SIGSTOP else 60.0,
            )
            # The chat loop closes a hung env in the background: the replacement follows.
            deadline = time.monotonic() + 30
            while workers.replaced == 0 and time.monotonic() < deadline:
                time.sleep(0.05)
            replaced = workers.replaced
            metrics = workers.metrics()
    finally:
        for pid in agent.stopped:  # never leave a stopped process behind
            for s in (signal.SIGCONT, signal.SIGKILL):
                try:
                    os.kill(pid, s)
                except ProcessLookupError:
                    break
    task_ids = sorted(str(r.episode.task_id) for r in rollouts)
    assert task_ids == sorted(str(s.task_id) for s in specs())  # each exactly once
    reasons = [(r.episode.task_id, r.episode.meta.get("truncation_reason")) for r in rollouts]
    assert replaced == 1, (agent.stopped, reasons)
    assert metrics["env_workers_replaced"] == 1.0
    for rollout in rollouts:
        episode = rollout.episode
        if episode.task_id == target:
            reason = episode.meta["truncation_reason"]
            assert episode.truncated and len(episode.turns) == 2
            if sig == signal.SIGKILL:
                assert "died" in reason, reason
            else:
                assert "timed out" in reason, reason
        else:
            assert comparable(rollout) == local_episodes[episode.task_id]


def test_worker_envs_equal_local_envs(backend: str) -> None:
    local = gym.make(HOUSEHOLD)
    with EnvWorkers(backend, 1, cpus_per_worker=0.5) as workers:
        env = workers.make(HOUSEHOLD)
        assert env.unwrapped.system_prompt == local.unwrapped.system_prompt
        assert list(env.unwrapped.task_ids("test")) == list(local.unwrapped.task_ids("test"))
        for seed in (0, 7):
            rng = np.random.default_rng(seed)
            expected = local.reset(seed=seed)
            assert env.reset(seed=seed) == expected
            info = expected[1]
            for _ in range(6):
                commands = info["admissible_commands"]
                action = str(commands[int(rng.integers(len(commands)))])
                got, want = env.step(action), local.step(action)
                assert got == want
                info = want[4]
        # A hostile action is the env's to explain, in the worker as locally.
        assert env.step("\x00" * 100_000)[4]["invalid_action"] is True
        # An env error in a live worker is an error, not a dead worker.
        with pytest.raises(RuntimeError, match="bad household task id"):
            env.reset(options={"task_id": "no-such-task"})
        assert workers.replaced == 0
        env.close()
    # A closed pool starts fresh workers when used again (a trainer's second train()).
    again = workers.make(HOUSEHOLD)
    assert again.reset(seed=0) == local.reset(seed=0)
    again.close()
    workers.close()


def test_unknown_backends_and_scripted_agents_get_clear_errors(tmp_path: Path) -> None:
    from rounds.agents.evaluate import EvalConfig, evaluate

    with pytest.raises(ValueError, match="choose one of thread, process, ray"):
        EnvWorkers("slurm", 2)
    config = EvalConfig(env_id=HOUSEHOLD, agent="expert", episodes=1, env_backend="process")
    with pytest.raises(ValueError, match="backend thread"):
        evaluate(config, tmp_path / "run")


def test_rounds_eval_and_the_trainer_take_a_backend() -> None:
    from typer.testing import CliRunner

    from rounds.cli import app
    from rounds.trainers.config import GRPOConfig

    config = GRPOConfig(env_workers=8, env_backend="ray", env_worker_resources={"docker": 1})
    assert (config.env_workers, config.env_backend) == (8, "ray")
    assert config.env_worker_resources == {"docker": 1.0}
    with pytest.raises(ValueError, match="env_backend"):
        GRPOConfig(env_backend="slurm")
    result = CliRunner().invoke(
        app, ["eval", HOUSEHOLD, "--agent", "expert", "--backend", "slurm", "--episodes", "1"]
    )
    assert result.exit_code != 0 and "env_backend" in result.output


def test_ray_actors_are_placed_by_custom_resources(ray_cluster: None) -> None:
    import ray

    assert ray.available_resources().get("browser") == 2.0
    with EnvWorkers("ray", 2, resources={"browser": 1}, cpus_per_worker=0.0) as workers:
        envs = [workers.make(HOUSEHOLD) for _ in range(2)]  # one per worker, both started
        assert all(env.reset(seed=0)[0] for env in envs)
        deadline = time.monotonic() + 10
        while ray.available_resources().get("browser", 0.0) != 0.0:
            assert time.monotonic() < deadline, ray.available_resources()
            time.sleep(0.1)
        for env in envs:
            env.close()
    deadline = time.monotonic() + 10
    while ray.available_resources().get("browser") != 2.0:  # released with the actors
        assert time.monotonic() < deadline, ray.available_resources()
        time.sleep(0.1)


@pytest.mark.slow
def test_an_evaluation_on_process_workers_equals_one_on_threads(tmp_path: Path) -> None:
    """``evaluate`` (``rounds eval``'s code path) with a model agent that reads only the
    conversation (an OpenAI-compatible endpoint on 127.0.0.1 that always says ``look``)."""
    from fake_openai import chat_body, fake_openai_server

    from rounds.agents.evaluate import EvalConfig, evaluate
    from rounds.storage import RunDir

    def handler(path: str, payload: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        return 200, chat_body("look"), {}

    runs = {}
    with fake_openai_server(handler) as (base_url, _):
        for backend in ("thread", "process"):
            config = EvalConfig(
                env_id=HOUSEHOLD,
                env_kwargs={"max_turns": 3},
                agent="openai",
                agent_options={"model": "m", "base_url": base_url},
                episodes=4,
                concurrency=2,
                env_backend=backend,
            )
            summary = evaluate(config, tmp_path / backend)
            episodes = sorted(RunDir(tmp_path / backend).episodes(), key=lambda e: str(e.task_id))
            runs[backend] = (summary, [[t.observation for t in e.turns] for e in episodes])
    assert runs["process"][1] == runs["thread"][1]
    assert len(runs["process"][1]) == 4 and all(len(turns) == 3 for turns in runs["process"][1])
    assert runs["process"][0]["env_workers"] == {
        "backend": "process",
        "env_workers": 2.0,
        "env_workers_replaced": 0.0,
    }
    assert "env_workers" not in runs["thread"][0]
