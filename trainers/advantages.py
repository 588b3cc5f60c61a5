"""Advantage estimators for agentic GRPO: pure functions over one group of rollouts.

A group is G episodes of the same task. Episode ``e`` has per-turn rewards
``r_{e,t}`` (after shaping) and an outcome ``R_e`` earned on its last turn.

- Outcome GRPO: ``A_e = (R_e − mean_g R) / (std_g R + ε)``, the same for every
  turn of the episode; ``scale_by_std=False`` drops the division (Dr. GRPO).
- Turn level (IGPO-style): the episode's reward sequence ``u_{e,t} = r_{e,t}``
  plus ``R_e`` on its last turn is z-scored within the group — jointly, or turn
  rewards and outcomes apart — and ``A_{e,t} = ẑ_{e,t} + γ A_{e,t+1}``.
- Step groups (GiGPO): turns of the group's episodes whose observations are
  identical form an anchor group; ``A^S_{e,t} = G_{e,t} − mean_anchor G`` with
  ``G_{e,t} = Σ_{k≥t} γ^{k−t} u_{e,k}``; ``w A^S`` is added to the above.

:func:`group_advantages` composes them for one group as the trainer's config asks.

Standard deviations are the sample std (``ddof=1``), as TRL's GRPO uses.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

EPS = 1e-6

Floats = NDArray[np.float64]


def group_zscore(values: ArrayLike, *, scale_by_std: bool = True, eps: float = EPS) -> Floats:
    """``(x − mean) / (std + ε)`` over the group (``x − mean`` without ``scale_by_std``)."""
    x: Floats = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return x
    centred: Floats = x - x.mean()
    if not scale_by_std:
        return centred
    std = float(x.std(ddof=1)) if x.size > 1 else 0.0
    scaled: Floats = centred / (std + eps)
    return scaled


def outcome_advantages(
    returns: ArrayLike, *, scale_by_std: bool = True, eps: float = EPS
) -> Floats:
    """Outcome GRPO: one advantage per episode, ``A_e = (R_e − mean) / (std + ε)``."""
    return group_zscore(returns, scale_by_std=scale_by_std, eps=eps)


def discounted_returns(rewards: Sequence[float] | Floats, gamma: float) -> Floats:
    """``G_t = r_t + γ G_{t+1}`` (with ``G_T = 0``), for every turn."""
    out: Floats = np.zeros(len(rewards))
    running = 0.0
    for t in range(len(rewards) - 1, -1, -1):
        running = float(rewards[t]) + gamma * running
        out[t] = running
    return out


def reward_sequences(
    turn_rewards: Sequence[Sequence[float]], outcomes: Sequence[float]
) -> list[Floats]:
    """``u_{e,t}``: each episode's turn rewards with its outcome added on the last turn."""
    sequences = []
    for rewards, outcome in zip(turn_rewards, outcomes, strict=True):
        u = np.asarray(rewards, dtype=float).copy()
        if u.size:
            u[-1] += outcome
        sequences.append(u)
    return sequences


def turn_advantages(
    turn_rewards: Sequence[Sequence[float]],
    outcomes: Sequence[float],
    *,
    gamma: float = 1.0,
    normalization: str = "joint",
    scale_by_std: bool = True,
    eps: float = EPS,
) -> list[Floats]:
    """Turn-level advantages: z-scored rewards of the group, discounted to each turn.

    ``joint`` z-scores every ``u_{e,t}`` of the group together; ``separate``
    z-scores the turn rewards among themselves and the outcomes among themselves,
    then adds the outcome's score to the last turn.
    """
    if normalization == "joint":
        sequences = reward_sequences(turn_rewards, outcomes)
        flat = group_zscore(
            np.concatenate(sequences) if sequences else [], scale_by_std=scale_by_std, eps=eps
        )
        scored: list[Floats] = []
        start = 0
        for u in sequences:
            scored.append(flat[start : start + u.size])
            start += u.size
    elif normalization == "separate":
        scored = []
        flat_turns = (
            np.concatenate([np.asarray(r, dtype=float) for r in turn_rewards])
            if turn_rewards
            else np.array([])
        )
        turn_scores = group_zscore(flat_turns, scale_by_std=scale_by_std, eps=eps)
        outcome_scores = group_zscore(outcomes, scale_by_std=scale_by_std, eps=eps)
        start = 0
        for e, rewards in enumerate(turn_rewards):
            z = turn_scores[start : start + len(rewards)].copy()
            if z.size:
                z[-1] += outcome_scores[e]
            scored.append(z)
            start += len(rewards)
    else:
        raise ValueError(f"normalization must be 'joint' or 'separate', not {normalization!r}")
    return [discounted_returns(z, gamma) for z in scored]


def step_group_advantages(
    observations: Sequence[Sequence[str]],
    turn_rewards: Sequence[Sequence[float]],
    outcomes: Sequence[float],
    *,
    gamma: float = 1.0,
    scale_by_std: bool = False,
    eps: float = EPS,
) -> list[Floats]:
    """GiGPO's step-level advantages: returns compared within anchor groups of identical observations.

    Returns:
        ``A^S_{e,t}`` for every turn; a turn whose observation no other turn shares gets 0.
    """
    returns = [discounted_returns(u, gamma) for u in reward_sequences(turn_rewards, outcomes)]
    anchors: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for e, episode_observations in enumerate(observations):
        for t, observation in enumerate(episode_observations):
            anchors[observation].append((e, t))
    result: list[Floats] = [np.zeros(len(r)) for r in returns]
    for members in anchors.values():
        if len(members) < 2:
            continue
        values = [returns[e][t] for e, t in members]
        scores = group_zscore(values, scale_by_std=scale_by_std, eps=eps)
        for (e, t), score in zip(members, scores, strict=True):
            result[e][t] = score
    return result


def group_advantages(
    turn_rewards: Sequence[Sequence[float]],
    outcomes: Sequence[float],
    observations: Sequence[Sequence[str]],
    *,
    estimator: Literal["outcome", "turn"] = "outcome",
    scale_by_std: bool = True,
    gamma: float = 1.0,
    turn_normalization: str = "joint",
    step_group_weight: float = 0.0,
    eps: float = EPS,
) -> list[Floats]:
    """Every turn's advantage in one group, composed as the trainer's config asks.

    ``outcome``: each turn of episode ``e`` gets :func:`outcome_advantages` of the returns
    ``R_e = outcome_e + Σ_t r_{e,t}``; ``turn``: :func:`turn_advantages`. With
    ``step_group_weight`` ``w > 0`` GiGPO's anchor term is added:
    ``A_{e,t} = A^E_{e,t} + w A^S_{e,t}`` (:func:`step_group_advantages`).

    Args:
        turn_rewards: per episode, its shaped per-turn rewards ``r_{e,t}``.
        outcomes: per episode, its shaped outcome reward.
        observations: per episode, the observation each turn acted on (anchor keys).

    Returns:
        Per episode, one advantage per turn.
    """
    if estimator == "outcome":
        returns = [float(o) + float(sum(r)) for r, o in zip(turn_rewards, outcomes, strict=True)]
        per_episode = outcome_advantages(returns, scale_by_std=scale_by_std, eps=eps)
        advantages = [
            np.full(len(rewards), a, dtype=np.float64)
            for rewards, a in zip(turn_rewards, per_episode, strict=True)
        ]
    elif estimator == "turn":
        advantages = turn_advantages(
            turn_rewards,
            outcomes,
            gamma=gamma,
            normalization=turn_normalization,
            scale_by_std=scale_by_std,
            eps=eps,
        )
    else:
        raise ValueError(f"estimator must be 'outcome' or 'turn', not {estimator!r}")
    if step_group_weight > 0:
        anchored = step_group_advantages(observations, turn_rewards, outcomes, gamma=gamma, eps=eps)
        advantages = [a + step_group_weight * s for a, s in zip(advantages, anchored, strict=True)]
    return advantages
