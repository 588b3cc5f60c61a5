"""Each shaping formula against a hand-computed case."""

from __future__ import annotations

import pytest

from rounds.records import Episode, Turn
from rounds.shaping import (
    GateChannel,
    RewardShaping,
    clip_process_rewards,
    delta_process_rewards,
    gated_accumulate,
    potential_shaping,
    priority_gates,
    weighted_reward,
)


def test_weighted_reward() -> None:
    # 1·1 + 0.5·0.4 + 0·9 (no weight for "other")
    assert weighted_reward(
        {"outcome": 1.0, "info_gain": 0.4, "other": 9.0}, {"outcome": 1.0, "info_gain": 0.5}
    ) == pytest.approx(1.2)


def test_gated_accumulate_keeps_turn_rewards_only_above_threshold() -> None:
    rewards, total = gated_accumulate([0.1, 0.2, 0.3], outcome=1.0, threshold=0.5)
    assert rewards == [0.1, 0.2, 0.3] and total == pytest.approx(1.6)
    rewards, total = gated_accumulate([0.1, 0.2, 0.3], outcome=0.0, threshold=0.5)
    assert rewards == [0.0, 0.0, 0.0] and total == 0.0
    # The threshold is inclusive: R_outcome >= δ.
    assert gated_accumulate([1.0], outcome=0.5, threshold=0.5)[1] == 1.5


def test_priority_gates() -> None:
    # channel 0 always open; channel 1 open (0.9 >= 0.5); channel 2 closed (channel 1: 0.1 < 0.2)
    assert priority_gates([0.9, 0.1, 5.0], [0.5, 0.2, None]) == [True, True, False]
    # a failed top channel closes everything below it
    assert priority_gates([0.0, 1.0, 1.0], [0.5, None, None]) == [True, False, False]
    # None thresholds never close
    assert priority_gates([-1.0, -1.0], [None, None]) == [True, True]
    with pytest.raises(ValueError):
        priority_gates([1.0], [None, None])


def test_potential_shaping() -> None:
    # Φ = 0, 0.5, 1.0 (terminal -> 0); γ = 0.9
    assert potential_shaping([0.0, 0.5, 1.0], gamma=0.9) == pytest.approx([0.45, -0.5])
    # non-terminal keeps the last potential: 0.9·1.0 − 0.5 = 0.4
    assert potential_shaping([0.0, 0.5, 1.0], gamma=0.9, terminal=False) == pytest.approx(
        [0.45, 0.4]
    )
    # with γ = 1 the terms telescope to −Φ(s_0) at a terminal state
    assert sum(potential_shaping([0.3, 0.7, 0.2, 0.9], gamma=1.0)) == pytest.approx(-0.3)
    assert potential_shaping([1.0]) == []


def episode(outcome: float, truncated: bool = False) -> Episode:
    turns = [
        Turn(
            index=0,
            observation="",
            action="",
            reward_components={"info_gain": 0.2, "format": 0.0, "outcome": 0.0},
            info={"phi": 0.5},
        ),
        Turn(
            index=1,
            observation="",
            action="",
            reward_components={"info_gain": 0.3, "format": -0.1, "outcome": outcome},
            info={"phi": 1.0},
        ),
    ]
    return Episode(
        env_id="x",
        turns=turns,
        truncated=truncated,
        meta={
            "reward_weights": {"outcome": 1.0, "info_gain": 1.0, "format": 1.0},
            "outcome_components": ["outcome"],
            "reset_info": {"phi": 0.0},
        },
    )


def test_reward_shaping_defaults_reproduce_env_rewards() -> None:
    shaped = RewardShaping().shape(episode(1.0))
    assert shaped.outcome == 1.0
    assert shaped.turn_rewards == pytest.approx([0.2, 0.2])
    assert shaped.total == pytest.approx(1.4)


def test_reward_shaping_gate_and_weights() -> None:
    shaping = RewardShaping(weights={"info_gain": 2.0}, gate_threshold=0.5)
    win = shaping.shape(episode(1.0))
    assert win.turn_rewards == pytest.approx([0.4, 0.5]) and win.total == pytest.approx(1.9)
    loss = shaping.shape(episode(0.0))
    assert loss.turn_rewards == [0.0, 0.0] and loss.total == 0.0


def test_reward_shaping_priority_channels() -> None:
    # outcome ≥ 0.5 opens "format"; format's sum −0.1 < 0 closes "info_gain".
    shaping = RewardShaping(
        gate_threshold=0.5,
        gate_channels=[
            GateChannel(components=["format"], threshold=0.0),
            GateChannel(components=["info_gain"]),
        ],
    )
    shaped = shaping.shape(episode(1.0))
    assert shaped.turn_rewards == pytest.approx([0.0, -0.1])
    assert shaped.total == pytest.approx(0.9)


def test_reward_shaping_potential_term() -> None:
    shaping = RewardShaping(weights={"info_gain": 0.0}, potential_key="phi", potential_gamma=1.0)
    # Φ: 0, 0.5, 1.0 -> terminal -> 0: F = [0.5, -0.5]; format −0.1 on turn 1
    assert shaping.shape(episode(1.0)).turn_rewards == pytest.approx([0.5, -0.6])
    # truncated: the last state's potential is kept: F = [0.5, 0.5]
    assert shaping.shape(episode(1.0, truncated=True)).turn_rewards == pytest.approx([0.5, 0.4])


# ---------------------------------------------------------------- bounded process rewards


def repeated_step_episode(repeats: int) -> Episode:
    """A trajectory that repeats one rewarded step (0.5 each time) and then fails."""
    turns = [
        Turn(
            index=i,
            observation="o",
            action="same rewarded step",
            reward_components={"step": 0.5, "outcome": 0.0},
        )
        for i in range(repeats)
    ]
    return Episode(
        env_id="x",
        turns=turns,
        meta={"reward_weights": {"step": 1.0, "outcome": 1.0}, "outcome_components": ["outcome"]},
    )


def test_clip_and_delta_process_rewards_by_hand() -> None:
    assert clip_process_rewards([0.5, 0.2, -0.3], eta=0.4) == pytest.approx([0.0, -0.2, -0.7])
    assert delta_process_rewards([0.5, 0.2, -0.3]) == pytest.approx([0.3, 0.5, -0.3])
    assert delta_process_rewards([]) == []


def test_repeating_a_rewarded_step_pays_only_without_a_bound() -> None:
    plain = [RewardShaping().shape(repeated_step_episode(n)).total for n in (1, 5, 20)]
    assert plain == pytest.approx([0.5, 2.5, 10.0])  # the hack: more repeats, more reward
    clip = RewardShaping(process_bound="clip", process_clip_eta=0.5)
    delta = RewardShaping(process_bound="delta")
    for n in (1, 5, 20):
        assert clip.shape(repeated_step_episode(n)).total == pytest.approx(0.0)
        assert delta.shape(repeated_step_episode(n)).total == pytest.approx(0.5)
    # Clip with a lower eta: repeating costs (each step min(0.5 - 0.6, 0) = -0.1).
    clip_low = RewardShaping(process_bound="clip", process_clip_eta=0.6)
    assert clip_low.shape(repeated_step_episode(5)).total == pytest.approx(-0.5)
