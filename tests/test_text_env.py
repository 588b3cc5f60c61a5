"""The invalid-action path and episode bookkeeping that TextEnv implements once."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import gymnasium as gym
import pytest
from builtin_envs import builtin_env_params
from gymnasium.error import ResetNeeded

ROOT = Path(__file__).resolve().parents[1]


def load_example_env() -> type:
    spec = importlib.util.spec_from_file_location(
        "custom_env_example", ROOT / "examples" / "custom_env.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["custom_env_example"] = module
    spec.loader.exec_module(module)
    return module.GuessNumberEnv


GuessNumberEnv = load_example_env()


def test_valid_turn_has_all_components_and_weighted_reward() -> None:
    env = GuessNumberEnv()
    observation, info = env.reset(options={"task_id": "3"})
    assert info == {"task_id": "3", "answer": "12"}
    observation, reward, terminated, truncated, info = env.step("50")
    assert observation == "No, it is lower than 50."
    assert info["reward_components"] == {"outcome": 0.0, "format": 0.0, "closer": 1.0}
    assert reward == pytest.approx(0.1)
    assert info["invalid_action"] is False and info["turn"] == 1
    observation, reward, terminated, truncated, info = env.step("12")
    assert terminated and not truncated
    assert reward == pytest.approx(1.1)
    assert info["outcome"] == 1.0 and info["metrics"] == {"success": 1.0}


@pytest.mark.parametrize(
    "action",
    ["", "x" * (1 << 20), "\x00\xff\x1b[31m", "\u202e\u200b", "fifty", 7, None, b"\xff\xfe"],
)
def test_bad_actions_never_raise(action: object) -> None:
    env = GuessNumberEnv(invalid_action_penalty=0.25)
    env.reset(seed=1)
    observation, reward, terminated, truncated, info = env.step(action)  # type: ignore[arg-type]
    assert info["invalid_action"] is True
    assert info["reward_components"]["format"] == -0.25
    assert reward == pytest.approx(-0.25)
    assert not terminated and not truncated
    assert isinstance(observation, str) and observation


def test_episode_ends_at_the_turn_limit_even_on_invalid_actions() -> None:
    env = GuessNumberEnv(max_turns=3)
    env.reset(seed=0)
    results = [env.step("nonsense") for _ in range(3)]
    assert [r[3] for r in results] == [False, False, True]
    observation, _, _, _, info = results[-1]
    assert "turn limit (3)" in observation
    assert info["outcome"] == 0.0 and info["metrics"] == {"success": 0.0}
    # stepping a finished episode is answered, not raised
    observation, reward, terminated, truncated, info = env.step("5")
    assert terminated and info["invalid_action"] and "reset()" in observation


def test_step_before_reset_raises_reset_needed() -> None:
    with pytest.raises(ResetNeeded):
        GuessNumberEnv().step("5")


def test_constructor_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="unknown reward components"):
        GuessNumberEnv(reward_weights={"nope": 1.0})
    with pytest.raises(ValueError, match="unknown split"):
        GuessNumberEnv(split="dev")
    with pytest.raises(ValueError, match="max_turns"):
        GuessNumberEnv(max_turns=0)


def test_observations_are_clipped_to_the_space() -> None:
    env = GuessNumberEnv(max_observation_chars=30)
    observation, _ = env.reset(seed=0)
    assert len(observation) <= 30
    assert env.observation_space.contains(observation)
    observation, *_ = env.step("not a number at all, long enough to clip")
    assert len(observation) == 30 and observation.endswith("clipped ...]")


def test_render_modes() -> None:
    env = GuessNumberEnv(render_mode="ansi")
    observation, _ = env.reset(seed=0)
    assert env.render() == observation
    with pytest.raises(ValueError, match="render_mode"):
        GuessNumberEnv(render_mode="rgb_array")


def test_registered_example_passes_gymnasium_checker() -> None:
    from gymnasium.utils.env_checker import check_env

    env = gym.make("examples/GuessNumber-v0")
    check_env(env.unwrapped)


# ------------------------------------------------------------ Gymnasium conformance

REGISTERED = builtin_env_params()


@pytest.mark.parametrize("env_id", REGISTERED)
def test_async_vector_env_with_default_shared_memory_matches_sync(env_id: str) -> None:
    """``make_vec(..., "async")`` with its defaults (shared memory) works for every env and
    gives the same observations, rewards and infos as the sync vector env."""
    actions = ("look", "exam: complete blood count")
    results = {}
    for mode in ("sync", "async"):
        envs = gym.make_vec(env_id, num_envs=2, vectorization_mode=mode)
        try:
            observations, _ = envs.reset(seed=[3, 4])
            stepped, rewards, terminated, truncated, infos = envs.step(actions)
        finally:
            envs.close()
        assert isinstance(observations, tuple) and all(isinstance(o, str) for o in observations)
        assert all(o for o in observations), "an empty observation came back"
        assert isinstance(stepped, tuple) and all(isinstance(o, str) and o for o in stepped)
        results[mode] = (observations, stepped, rewards.tolist(), list(infos["invalid_action"]))
    for field, sync, vectorised in zip(
        ("reset observations", "step observations", "rewards", "invalid_action"),
        results["sync"],
        results["async"],
        strict=True,
    ):
        for index, (expected, got) in enumerate(zip(sync, vectorised, strict=True)):
            assert got == expected, f"{field}[{index}] differs between sync and async"


def test_async_vector_env_with_spawned_workers() -> None:
    """Spawned workers register TextSpace's shared-memory functions when they unpickle the space."""
    envs = gym.make_vec(
        "rounds/Household-v0",
        num_envs=2,
        vectorization_mode="async",
        vector_kwargs={"context": "spawn"},
    )
    try:
        observations, _ = envs.reset(seed=[0, 1])
        stepped, *_ = envs.step(("inventory", "inventory"))
    finally:
        envs.close()
    assert all(o.startswith("You are in the middle of") for o in observations)
    assert stepped == ("You are not carrying anything.",) * 2


def test_episode_ended_tracks_reset_and_the_last_turn() -> None:
    env = GuessNumberEnv(max_turns=2)
    assert env.episode_ended
    env.reset(options={"task_id": "3"})
    assert not env.episode_ended
    env.step("50")
    assert not env.episode_ended
    *_, truncated, _ = env.step("40")
    assert truncated and env.episode_ended
