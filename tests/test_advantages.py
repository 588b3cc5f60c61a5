"""Each advantage estimator against a hand-computed example."""

from __future__ import annotations

import numpy as np
import pytest

from rounds.trainers.advantages import (
    discounted_returns,
    group_advantages,
    outcome_advantages,
    step_group_advantages,
    turn_advantages,
)


def test_outcome_grpo_zscore_and_dr_grpo() -> None:
    # R = [1, 0, 0, 1]: mean 0.5, sample std sqrt(1/3) = 0.57735
    a = outcome_advantages([1.0, 0.0, 0.0, 1.0], eps=0.0)
    np.testing.assert_allclose(a, [0.866025, -0.866025, -0.866025, 0.866025], atol=1e-6)
    np.testing.assert_allclose(
        outcome_advantages([1.0, 0.0, 0.0, 1.0], scale_by_std=False), [0.5, -0.5, -0.5, 0.5]
    )
    np.testing.assert_allclose(outcome_advantages([0.3, 0.3, 0.3]), [0.0, 0.0, 0.0])


def test_discounted_returns() -> None:
    np.testing.assert_allclose(
        discounted_returns([1.0, 0.0, 2.0], 0.5), [1.0 + 0.5 * (0.0 + 0.5 * 2.0), 1.0, 2.0]
    )
    np.testing.assert_allclose(discounted_returns([1.0, 1.0], 1.0), [2.0, 1.0])


def test_turn_advantages_joint() -> None:
    # Two episodes: turn rewards [0.2, 0.0] and [0.0]; outcomes 1 and 0.
    # u = [0.2, 1.0] and [0.0]; pooled mean 0.4, sample std 0.52915.
    z = np.array([0.2 - 0.4, 1.0 - 0.4, 0.0 - 0.4]) / 0.5291503
    result = turn_advantages([[0.2, 0.0], [0.0]], [1.0, 0.0], gamma=1.0, eps=0.0)
    np.testing.assert_allclose(result[0], [z[0] + z[1], z[1]], atol=1e-6)
    np.testing.assert_allclose(result[1], [z[2]], atol=1e-6)
    discounted = turn_advantages([[0.2, 0.0], [0.0]], [1.0, 0.0], gamma=0.5, eps=0.0)
    np.testing.assert_allclose(discounted[0], [z[0] + 0.5 * z[1], z[1]], atol=1e-6)


def test_turn_advantages_separate() -> None:
    # turn rewards [1, 0] and [0, 0] -> pooled mean 0.25, std 0.5 -> [1.5, -0.5], [-0.5, -0.5]
    # outcomes [1, 0] -> mean 0.5, std 0.70711 -> [0.70711, -0.70711], added on the last turn
    result = turn_advantages(
        [[1.0, 0.0], [0.0, 0.0]], [1.0, 0.0], gamma=1.0, normalization="separate", eps=0.0
    )
    last0 = -0.5 + 0.7071068
    last1 = -0.5 - 0.7071068
    np.testing.assert_allclose(result[0], [1.5 + last0, last0], atol=1e-6)
    np.testing.assert_allclose(result[1], [-0.5 + last1, last1], atol=1e-6)
    with pytest.raises(ValueError):
        turn_advantages([[1.0]], [1.0], normalization="mixed")


def test_step_group_advantages_use_identical_observations() -> None:
    # Episodes start from the same observation "s0"; one reaches "s1" twice.
    observations = [["s0", "s1"], ["s0", "s2"], ["s0", "s1"]]
    rewards = [[0.0, 0.0], [0.0, 0.0], [0.0, 0.0]]
    outcomes = [1.0, 0.0, 0.0]
    # gamma 1: returns at s0 are [1, 0, 0] -> mean 1/3 -> [2/3, -1/3, -1/3]; at s1: [1, 0] -> [0.5, -0.5]; s2 alone -> 0
    result = step_group_advantages(observations, rewards, outcomes, gamma=1.0)
    np.testing.assert_allclose(result[0], [2 / 3, 0.5])
    np.testing.assert_allclose(result[1], [-1 / 3, 0.0])
    np.testing.assert_allclose(result[2], [-1 / 3, -0.5])
    # with gamma 0.5 the return at s0 is halved: [0.5, 0, 0] -> mean 1/6
    halved = step_group_advantages(observations, rewards, outcomes, gamma=0.5)
    np.testing.assert_allclose(halved[0][0], 0.5 - 1 / 6)


def test_group_advantages_compose_the_estimators_as_configured() -> None:
    observations = [["s0", "s1"], ["s0", "s2"], ["s0", "s1"]]
    rewards = [[0.5, 0.0], [0.0, 0.0], [0.0, 0.0]]
    outcomes = [1.0, 0.0, 0.0]
    # outcome: returns R = [1.5, 0, 0], mean 0.5, sample std sqrt(0.75) = 0.8660254, on every turn
    outcome = group_advantages(rewards, outcomes, observations, estimator="outcome", eps=0.0)
    z = np.array([1.0, -0.5, -0.5]) / 0.8660254
    for e in range(3):
        np.testing.assert_allclose(outcome[e], [z[e], z[e]], atol=1e-6)
    # turn: exactly turn_advantages
    turn = group_advantages(rewards, outcomes, observations, estimator="turn", gamma=0.5, eps=0.0)
    for got, want in zip(turn, turn_advantages(rewards, outcomes, gamma=0.5, eps=0.0), strict=True):
        np.testing.assert_allclose(got, want)
    # step_group_weight w adds w * A^S: at s0 the returns are [1.5, 0, 0] -> [1, -0.5, -0.5];
    # at s1 (episodes 0 and 2) [1, 0] -> [0.5, -0.5]; s2 is alone -> 0.
    weighted = group_advantages(
        rewards, outcomes, observations, estimator="outcome", step_group_weight=0.4, eps=0.0
    )
    np.testing.assert_allclose(weighted[0], [z[0] + 0.4 * 1.0, z[0] + 0.4 * 0.5], atol=1e-6)
    np.testing.assert_allclose(weighted[1], [z[1] - 0.4 * 0.5, z[1]], atol=1e-6)
    np.testing.assert_allclose(weighted[2], [z[2] - 0.4 * 0.5, z[2] - 0.4 * 0.5], atol=1e-6)
    with pytest.raises(ValueError, match="estimator"):
        group_advantages(rewards, outcomes, observations, estimator="bogus")  # type: ignore[arg-type]
