"""Prover progress: exact env snapshots, ``A_t = Q^μ(s_t, a_t) − V^μ(s_t)``, noisy provers, and
a trainer that learns faster with progress rewards where outcome-only GRPO stalls."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import toy_envs
from conftest import TOY_TRAINING

import rounds
from rounds.agents.loop import EpisodeSpec, run_episodes
from rounds.agents.registry import make_agent
from rounds.records import Episode, Turn
from rounds.registration import make
from rounds.shaping import RewardShaping, noisy_prover, prover_progress
from rounds.snapshots import restore_state, snapshot_state
from rounds.trainers import GRPOConfig, GRPOTrainer
from rounds.trainers.prover import ProverProgress


class ProverVowels3Env(toy_envs.Vowels3Env):
    """``toys/Vowels3-v0`` with snapshots, a command list and a scripted prover (says "apple")."""

    def admissible_commands(self) -> list[str]:
        return ["apple", "banana"]

    def scripted_policies(self) -> dict[str, Any]:
        return {"vowel": lambda env, rng: "apple"}

    def snapshot(self) -> dict[str, Any]:
        return snapshot_state(self, ("good",))

    def restore(self, snapshot: dict[str, Any]) -> None:
        restore_state(self, snapshot, ("good",))


rounds.register_env("toys/ProverVowels3-v0", entry_point=f"{__name__}:ProverVowels3Env")


def replay(env: Any, seed: int, task_id: str | None, actions: list[str]) -> list[Any]:
    out: list[Any] = [env.reset(seed=seed, options={"task_id": task_id} if task_id else None)]
    for action in actions:
        out.append(env.step(action))
    return out


@pytest.mark.parametrize(
    ("env_id", "kwargs", "policy"),
    [
        ("rounds/Household-v0", {"max_rooms": 2, "max_turns": 30}, "expert"),
        ("rounds/Household-v0", {"task_types": ["pick"], "action_mode": "choice"}, "random"),
        ("rounds/DiagGym-v0", {}, "bayes"),
        ("rounds/DiagGym-v0", {}, "random"),
    ],
)
def test_restored_env_replays_byte_for_byte(
    env_id: str, kwargs: dict[str, Any], policy: str
) -> None:
    """Snapshot mid-episode, play on, restore (into the same env and into a fresh one), play the
    same actions again: every observation, reward and info is identical."""
    env: Any = make(env_id, **kwargs).unwrapped
    agent_policy = env.scripted_policies()[policy]
    for seed in range(3):
        env.reset(seed=seed)
        rng = np.random.default_rng(seed)
        for _ in range(2):
            if not env.episode_ended:
                env.step(agent_policy(env, rng))
        if env.episode_ended:
            continue
        snap = env.snapshot()
        actions: list[str] = []
        first: list[Any] = []
        while not env.episode_ended:
            actions.append(agent_policy(env, rng))
            first.append(env.step(actions[-1]))
        fresh: Any = make(env_id, **kwargs).unwrapped
        for target in (env, fresh):
            target.restore(snap)
            again = [target.step(a) for a in actions]
            assert repr(again) == repr(first)
            assert target.episode_ended
        # The snapshot is not consumed or changed by restoring it.
        env.restore(snap)
        assert repr([env.step(a) for a in actions]) == repr(first)


def test_restore_rejects_a_foreign_snapshot() -> None:
    env: Any = make("rounds/Household-v0").unwrapped
    env.reset(seed=0)
    with pytest.raises(ValueError, match="not a snapshot"):
        env.restore({"world": None})


def toy_episode(actions: list[str], seed: int = 0) -> Episode:
    env: Any = make("toys/ProverVowels3-v0").unwrapped
    observation, _ = env.reset(seed=seed, options={"task_id": "train-1"})
    turns = []
    for i, action in enumerate(actions):
        next_observation, reward, _, _, info = env.step(action)
        turns.append(
            Turn(index=i, observation=observation, action=action, reward=float(reward), info=info)
        )
        observation = next_observation
    return Episode(env_id="toys/ProverVowels3-v0", task_id="train-1", seed=seed, turns=turns)


def test_prover_progress_is_q_minus_v_of_a_perfect_prover() -> None:
    """A prover that always succeeds: V = 1 while every reply so far started with a vowel, 0 after
    a bad one; so a good turn's progress is 0 and the first bad turn's is -1."""
    factory = lambda: make("toys/ProverVowels3-v0")  # noqa: E731
    assert prover_progress(factory, "vowel", toy_episode(["apple", "egg", "ice"])) == [
        0.0,
        0.0,
        0.0,
    ]
    assert prover_progress(factory, "vowel", toy_episode(["apple", "pear", "ice"])) == [
        0.0,
        -1.0,
        0.0,
    ]


def test_noisy_prover_progress_matches_the_exact_values() -> None:
    """With ε = 1 the prover says apple or banana at random (p = 1/2 of a vowel per turn), so
    V(s_t) = 0.5^(turns left) while no turn failed: progress of a good first turn is
    0.25 − 0.125 in expectation; many rollouts estimate it closely."""
    factory = lambda: make("toys/ProverVowels3-v0")  # noqa: E731
    progress = prover_progress(
        factory, "vowel", toy_episode(["apple", "pear", "ice"]), rollouts=4000, epsilon=1.0
    )
    assert progress[0] == pytest.approx(0.25 - 0.125, abs=0.03)
    assert progress[1] == pytest.approx(0.0 - 0.25, abs=0.03)
    assert progress[2] == 0.0


def test_noisy_prover_takes_random_admissible_commands() -> None:
    env: Any = make("toys/ProverVowels3-v0").unwrapped
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    always = noisy_prover(lambda e, r: "apple", 0.0)
    random = noisy_prover(lambda e, r: "apple", 1.0)
    assert {always(env, rng) for _ in range(50)} == {"apple"}
    assert {random(env, rng) for _ in range(50)} == {"apple", "banana"}
    with pytest.raises(ValueError):
        noisy_prover(lambda e, r: "apple", 1.5)


def test_prover_progress_rejects_an_episode_the_env_does_not_reproduce() -> None:
    episode = toy_episode(["apple", "egg"])
    episode.turns[1].observation = "something else"
    with pytest.raises(ValueError, match="not deterministic"):
        prover_progress(lambda: make("toys/ProverVowels3-v0"), "vowel", episode)


def test_household_prover_progress_of_a_random_agent() -> None:
    """On Household, the expert prover's progress is 0 on turns that keep the task solvable in
    the turns left, and a noisy prover gives non-zero progress on more turns."""

    def factory() -> Any:
        return make("rounds/Household-v0", task_types=["pick"], max_rooms=1, max_turns=12)

    base: Any = factory().unwrapped
    agent = make_agent("random", base)
    rollout = next(
        iter(
            run_episodes(
                factory,
                agent,
                [EpisodeSpec(task_id=None, seed=3, agent_seed=3)],
                env_id="rounds/Household-v0",
                concurrency=1,
            )
        )
    )
    episode = rollout.episode
    exact = prover_progress(factory, "expert", episode, rollouts=2)
    noisy = prover_progress(factory, "expert", episode, rollouts=8, epsilon=0.3, seed=1)
    assert len(exact) == len(noisy) == len(episode.turns)
    assert sum(exact) == pytest.approx(episode.outcome - 1.0)  # telescopes: V(end) - V(s_0)
    assert sum(v != 0 for v in noisy) > sum(v != 0 for v in exact)


@pytest.mark.slow
def test_progress_rewards_learn_faster_where_outcome_only_grpo_stalls(tmp_path: Path) -> None:
    """Same seeds and settings; the outcome-only run has no turn reward (it stalls, as in the
    trainer's turn-level test); the other adds the prover's progress as the turn reward."""
    base = {
        **TOY_TRAINING,
        "env_id": "toys/ProverVowels3-v0",
        # With progress rewards success takes off between steps 11 and 14 (seeds 0-2, one
        # 24-step run each) and is above 0.85 within five steps; outcome-only stays under
        # 0.1 on seeds 0 and 1 (seed 2's finds the vowels by itself at step 13).
        "steps": 20,
        "learning_rate": 2e-2,
        "advantage": "turn",
        "gamma": 0.0,  # progress is already an advantage: its return-to-go telescopes away
        "shaping": RewardShaping(weights={"turn": 0.0}),
        "progress": False,
    }

    def curve(name: str, **extra: Any) -> tuple[list[float], list[dict[str, Any]]]:
        rows: list[dict[str, Any]] = []
        config = GRPOConfig(**{**base, **extra, "output_dir": str(tmp_path / name)})
        GRPOTrainer(config=config, on_step=rows.append).train()
        return [r["success_rate"] for r in rows], rows

    outcome_only, _ = curve("outcome")
    progress, rows = curve(
        "progress", prover_progress=ProverProgress(prover="vowel", rollouts=4, epsilon=0.5)
    )
    assert np.mean(progress[-3:]) >= 0.6
    assert np.mean(progress[-3:]) > np.mean(outcome_only[-3:]) + 0.3
    assert all(r["prover_rollouts"] > 0 for r in rows)
    assert all("time_prover" in r for r in rows)
