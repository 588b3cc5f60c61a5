"""Evaluation runs: an agent on an env's tasks, written to a run directory.

``rounds eval`` and :func:`evaluate` are one code path. The run directory gets
``config.yaml``, ``episodes.jsonl`` (appended as episodes finish) and
``summary.json``; ``resume=True`` continues an interrupted run, skipping the
episodes already written.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, model_validator

from rounds.agents.loop import EpisodeSpec, Rollout, run_episodes
from rounds.agents.registry import make_agent
from rounds.distributed.workers import EnvWorkers
from rounds.registration import make
from rounds.stats import summarize_episodes
from rounds.storage import RunDir
from rounds.text_env import TextEnv


class EvalConfig(BaseModel):
    """What an evaluation runs; saved as the run's ``config.yaml``."""

    kind: str = Field(default="eval", description="Run kind, read by the replay UI.")
    env_id: str = Field(description="A registered env id, e.g. rounds/Household-v0.")
    env_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="Keyword arguments for gym.make."
    )
    agent: str = Field(
        description="Agent name (a scripted baseline of the env, or a model backend)."
    )
    agent_options: dict[str, Any] = Field(
        default_factory=dict, description="Options for the agent."
    )
    split: str = Field(default="test", description="Task split to evaluate on.")
    episodes: int | None = Field(
        default=None, ge=1, description="Number of tasks with one sample each."
    )
    tasks: int | None = Field(
        default=None, ge=1, description="Number of tasks (the split's first T)."
    )
    samples_per_task: int = Field(default=1, ge=1, description="Independent episodes per task (K).")
    seed: int = Field(default=0, description="Base seed of env resets and agent sampling.")
    concurrency: int = Field(default=1, ge=1, description="Episodes run at once.")
    step_timeout_s: float = Field(
        default=60.0, gt=0, description="Env step timeout; the episode is truncated."
    )
    env_backend: Literal["thread", "process", "ray"] = Field(
        default="thread",
        description="Where envs run: the chat loop's threads, worker processes, or Ray actors.",
    )
    env_workers: int | None = Field(
        default=None,
        ge=1,
        description="Env workers of a process/ray backend (default: concurrency).",
    )
    env_worker_resources: dict[str, float] = Field(
        default_factory=dict,
        description="Ray custom resources each env worker needs (e.g. {docker: 1}), beside the env's own.",
    )

    @model_validator(mode="after")
    def _one_way_to_count(self) -> EvalConfig:
        """``episodes`` is shorthand for ``tasks`` with one sample each; both at once, or
        ``episodes`` with several samples, would leave one of them silently unused."""
        if self.episodes is not None and self.tasks is not None:
            raise ValueError(
                f"episodes={self.episodes} and tasks={self.tasks} both set the number of tasks; "
                "pass tasks=T (with samples_per_task=K for K episodes per task) or episodes=N "
                "(one episode per task), not both"
            )
        if self.episodes is not None and self.samples_per_task > 1:
            k = self.samples_per_task
            raise ValueError(
                f"episodes={self.episodes} runs one episode per task, but samples_per_task={k} "
                f"asks for {k}; for {k} episodes of each of {self.episodes} tasks pass "
                f"tasks={self.episodes} instead of episodes={self.episodes}"
            )
        return self

    def num_tasks(self, available: int | None = None) -> int:
        """Tasks to run: ``tasks`` or ``episodes``, else 10 (or every task of a smaller split)."""
        count = self.tasks if self.tasks is not None else self.episodes
        if count is None:
            return 10 if available is None else min(10, available)
        return count


class RunDirError(Exception):
    """The run directory cannot be used as asked (the message says what to do)."""


def _agent_seed(seed: int, slot: int) -> int:
    digest = hashlib.sha256(f"{seed}:{slot}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def plan_episodes(config: EvalConfig, env: TextEnv) -> list[EpisodeSpec]:
    """The evaluation's episodes: the split's first T tasks, K samples each, in a fixed order."""
    ids = list(env.task_ids(config.split))
    if not ids:
        raise ValueError(f"split {config.split!r} of {config.env_id} has no tasks")
    tasks = config.num_tasks(len(ids))
    if tasks > len(ids):
        flag = "tasks" if config.tasks is not None else "episodes"
        raise ValueError(
            f"{flag}={tasks} is more than the {len(ids)} tasks of the {config.split!r} split of "
            f"{config.env_id} (tasks are never repeated to make up the number); pass "
            f"{flag}={len(ids)} for every task"
            + (", and samples_per_task=K for K episodes per task" if flag == "tasks" else "")
        )
    specs = []
    for t in range(tasks):
        for k in range(config.samples_per_task):
            slot = t * config.samples_per_task + k
            specs.append(
                EpisodeSpec(
                    task_id=ids[t],
                    seed=config.seed + slot,
                    agent_seed=_agent_seed(config.seed, slot),
                    meta={"slot": slot, "sample": k},
                )
            )
    return specs


_SAME_ON_RESUME = (
    "env_id",
    "env_kwargs",
    "agent",
    "agent_options",
    "split",
    "seed",
    "samples_per_task",
)


def _saved_config(run: RunDir) -> dict[str, Any]:
    """The run's ``config.yaml``, strictly: a resume that cannot read what the saved
    episodes were run with cannot check that new ones match them."""
    path = run.config_path
    if not path.exists():
        raise RunDirError(
            f"cannot resume {run.path}: it holds episodes but no config.yaml, so nothing says "
            "which agent and settings produced them; start a new run with another --out directory."
        )
    try:
        saved = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise RunDirError(
            f"cannot resume {run.path}: its config.yaml is unreadable ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else err!r}), so the saved episodes cannot be "
            "checked against this run's settings; restore config.yaml or use another --out directory."
        ) from err
    missing = [k for k in _SAME_ON_RESUME if not isinstance(saved, dict) or k not in saved]
    if missing:
        raise RunDirError(
            f"cannot resume {run.path}: its config.yaml lacks {', '.join(missing)}, so the saved "
            "episodes cannot be checked against this run's settings; restore config.yaml or use "
            "another --out directory."
        )
    assert isinstance(saved, dict)
    return saved


def _resume_conflicts(run: RunDir, config: EvalConfig) -> list[str]:
    """Every setting that differs from the saved run, as ``name: saved -> now``."""
    saved, now = _saved_config(run), config.model_dump(mode="json")
    return [f"{k}: {saved[k]!r} -> {now[k]!r}" for k in _SAME_ON_RESUME if saved[k] != now[k]]


def evaluate(
    config: EvalConfig,
    out: str | Path,
    *,
    resume: bool = False,
    on_episode: Callable[[Rollout], None] | None = None,
) -> dict[str, Any]:
    """Run an evaluation into the run directory ``out`` and return its summary."""
    run = RunDir(out)
    done: set[int] = set()
    if run.episodes_path.exists() and run.episodes_path.stat().st_size > 0:
        if not resume:
            raise RunDirError(
                f"{run.path} already holds episodes. Pass --resume to continue that run, "
                "or choose another --out directory."
            )
        changed = _resume_conflicts(run, config)
        if changed:
            raise RunDirError(
                f"cannot resume {run.path}: this run's settings differ from its saved config.yaml "
                f"({'; '.join(changed)}); use the same settings, or another --out directory."
            )
        saved = list(run.episodes())
        strangers = sorted(
            {f"{e.env_id} / {e.agent}" for e in saved} - {f"{config.env_id} / {config.agent}"}
        )
        if strangers:
            raise RunDirError(
                f"cannot resume {run.path}: episodes.jsonl holds episodes of {', '.join(strangers)} "
                f"(env / agent), not only of {config.env_id} / {config.agent}; use another --out "
                "directory."
            )
        done = {int(e.meta["slot"]) for e in saved if "slot" in e.meta}
    run.write_config(config)

    env: TextEnv = make(config.env_id, split=config.split, **config.env_kwargs).unwrapped  # type: ignore[assignment]
    planned = plan_episodes(config, env)
    specs = [s for s in planned if s.meta["slot"] not in done]
    derived = dict(env.derived_metrics)
    agent = make_agent(config.agent, env, **config.agent_options)
    if config.env_backend != "thread" and config.agent in env.scripted_policies():
        agent.close()
        raise ValueError(
            f"the scripted agent {config.agent!r} reads the env's true state, which stays in the "
            f"env's worker; run it with env_backend='thread' (rounds eval --backend thread)"
        )
    env.close()
    workers = EnvWorkers(
        config.env_backend,
        config.env_workers or config.concurrency,
        resources=config.env_worker_resources,
    )
    try:
        with run.episode_writer() as writer:
            for rollout in run_episodes(
                lambda: workers.make(config.env_id, split=config.split, **config.env_kwargs),
                agent,
                specs,
                env_id=config.env_id,
                concurrency=config.concurrency,
                step_timeout_s=config.step_timeout_s,
            ):
                writer.write(rollout.episode)
                if on_episode is not None:
                    on_episode(rollout)
    finally:
        agent.close()
        workers.close()
    episodes = list(run.episodes())
    summary = {
        "settings": {
            "env_id": config.env_id,
            "agent": config.agent,
            "model": config.agent_options.get("model"),
            "split": config.split,
            "tasks": len({s.task_id for s in planned}),
            "samples_per_task": config.samples_per_task,
        },
        **summarize_episodes(episodes, derived=derived, seed=config.seed),
    }
    if config.env_backend != "thread":
        summary["env_workers"] = {"backend": config.env_backend, **workers.metrics()}
    run.write_summary(summary)
    return summary
