"""A training step's episodes: which tasks, which seeds, and how they group.

Step ``s`` draws ``tasks_per_step`` tasks with an RNG seeded by ``(seed, s)``; each
is played ``group_size`` times with one env seed per group (the members differ only
in sampling, so the group baseline compares policies, not env noise). Every seed is
a function of ``(seed, s)``, so a resumed run replays the remaining steps exactly.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np

from rounds.agents.loop import EpisodeSpec, Rollout
from rounds.trainers.config import GRPOConfig


def step_seed(*parts: object) -> int:
    """A 31-bit seed from ``parts``, stable across processes."""
    return zlib.crc32("\x1f".join(str(p) for p in parts).encode()) & 0x7FFFFFFF


def step_episodes(
    config: GRPOConfig,
    task_ids: Sequence[str],
    step: int,
    *,
    weights: np.ndarray | None = None,
) -> tuple[list[EpisodeSpec], int]:
    """The step's episodes (``group``/``member`` in their meta) and the generation seed;
    ``weights`` (a curriculum's sampling probabilities over ``task_ids``) bias the draw."""
    rng = np.random.default_rng([config.seed, step])
    count = len(task_ids) if weights is None else int(np.count_nonzero(weights))
    picks = rng.choice(
        len(task_ids), size=config.tasks_per_step, replace=count < config.tasks_per_step, p=weights
    )
    specs = [
        EpisodeSpec(
            task_id=str(task_ids[int(task)]),
            seed=step_seed(config.seed, step, g),  # a group shares the task and its env seed
            agent_seed=step_seed("agent", config.seed, step, g, k),
            meta={"step": step, "group": g, "member": k},
        )
        for g, task in enumerate(picks)
        for k in range(config.group_size)
    ]
    return specs, step_seed("sample", config.seed, step)


def group_by_task(rollouts: Sequence[Rollout], groups: int) -> list[list[Rollout]]:
    """The rollouts as ``groups`` GRPO groups, each in member order (whatever order they
    finished in)."""
    ordered = sorted(rollouts, key=lambda r: (r.episode.meta["group"], r.episode.meta["member"]))
    result: list[list[Rollout]] = [[] for _ in range(groups)]
    for rollout in ordered:
        result[int(rollout.episode.meta["group"])].append(rollout)
    return result
