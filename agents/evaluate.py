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
from typing import Any

from pydantic import BaseModel, Field

from rounds.agents.loop import EpisodeSpec, Rollout, run_episodes
from rounds.agents.registry import make_agent
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
    episodes: int | None = Field(default=None, description="Number of tasks with one sample each.")
    tasks: int | None = Field(default=None, description="Number of tasks (the split's first T).")
    samples_per_task: int = Field(default=1, ge=1, description="Independent episodes per task (K).")
    seed: int = Field(default=0, description="Base seed of env resets and agent sampling.")
    concurrency: int = Field(default=1, ge=1, description="Episodes run at once.")
    step_timeout_s: float = Field(
        default=60.0, gt=0, description="Env step timeout; the episode is truncated."
    )

    def num_tasks(self) -> int:
        count = self.tasks if self.tasks is not None else self.episodes
        return 10 if count is None else count


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
    specs = []
    for t in range(config.num_tasks()):
        for k in range(config.samples_per_task):
            slot = t * config.samples_per_task + k
            specs.append(
                EpisodeSpec(
                    task_id=ids[t % len(ids)],
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
        previous = run.read_config()
        changed = [
            k
            for k in _SAME_ON_RESUME
            if k in previous and previous[k] != config.model_dump(mode="json")[k]
        ]
        if changed:
            raise RunDirError(
                f"cannot resume {run.path}: {', '.join(changed)} differ from the saved config.yaml; "
                "use the same settings or another --out directory."
            )
        done = {int(e.meta["slot"]) for e in run.episodes() if "slot" in e.meta}
    run.write_config(config)

    env: TextEnv = make(config.env_id, split=config.split, **config.env_kwargs).unwrapped  # type: ignore[assignment]
    specs = [s for s in plan_episodes(config, env) if s.meta["slot"] not in done]
    derived = dict(env.derived_metrics)
    agent = make_agent(config.agent, env, **config.agent_options)
    env.close()
    try:
        with run.episode_writer() as writer:
            for rollout in run_episodes(
                lambda: make(config.env_id, split=config.split, **config.env_kwargs),
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
        close = getattr(agent, "close", None)
        if callable(close):
            close()
    episodes = list(run.episodes())
    summary = {
        "settings": {
            "env_id": config.env_id,
            "agent": config.agent,
            "model": config.agent_options.get("model"),
            "split": config.split,
            "tasks": config.num_tasks(),
            "samples_per_task": config.samples_per_task,
        },
        **summarize_episodes(episodes, derived=derived, seed=config.seed),
    }
    run.write_summary(summary)
    return summary
