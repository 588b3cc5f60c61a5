"""Prover progress as a turn reward: the trainer's side of :func:`rounds.shaping.prover_progress`.

Each rollout is replayed in a fresh env and a scripted prover policy is rolled out from
snapshots of every state it passed through; turn ``t`` gains ``weight · (Q^μ(s_t, a_t) −
V^μ(s_t))`` (Setlur et al., 2024, "Rewarding Progress: Scaling Automated Process
Verifiers for LLM Reasoning"). The cost is env steps, not model calls:
``rollouts · (T + 1)`` prover rollouts per episode, reported as ``prover_rollouts``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from rounds.shaping import prover_progress


class ProverProgress(BaseModel):
    """Config block ``prover_progress``: a turn reward from a scripted prover's rollouts."""

    model_config = ConfigDict(extra="forbid")

    prover: str = Field(description="The env's scripted policy used as the prover (e.g. bayes).")
    rollouts: int = Field(default=4, ge=1, description="Prover rollouts per state (k).")
    weight: float = Field(default=1.0, description="Weight of the progress in the turn reward.")
    epsilon: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="Chance the prover takes a random admissible command (a weaker prover).",
    )


def add_prover_progress(
    scored: Sequence[Any],
    env_factory: Callable[[], Any],
    settings: ProverProgress,
    *,
    seed: int,
) -> dict[str, float]:
    """Add ``settings.weight · A_t`` to each scored episode's turn rewards (``Scored`` items of
    :mod:`rounds.trainers.scoring`), write ``A_t`` into each turn's ``info["prover_progress"]``,
    and return the cost: prover rollouts and seconds."""
    started = time.perf_counter()
    rollouts = 0
    values: list[float] = []
    for item in scored:
        episode = item.rollout.episode
        progress = prover_progress(
            env_factory,
            settings.prover,
            episode,
            rollouts=settings.rollouts,
            epsilon=settings.epsilon,
            seed=seed,
        )
        ended = sum(1 for t in episode.turns if "outcome" in t.info)
        rollouts += settings.rollouts * (len(episode.turns) + 1 - ended)
        for t, (turn, value) in enumerate(zip(episode.turns, progress, strict=True)):
            turn.info["prover_progress"] = value
            item.turn_rewards[t] += settings.weight * value
            values.append(value)
    return {
        "prover_rollouts": float(rollouts),
        "prover_progress_mean": sum(values) / len(values) if values else 0.0,
        "prover_progress_abs_mean": sum(abs(v) for v in values) / len(values) if values else 0.0,
        "time_prover": time.perf_counter() - started,
    }
