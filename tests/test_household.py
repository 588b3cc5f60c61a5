from __future__ import annotations

import copy

import gymnasium as gym
import numpy as np
import pytest

import rounds
from rounds.envs.household.env import HouseholdEnv
from rounds.envs.household.expert import expert_command
from rounds.envs.household.generate import SPLIT_SIZES, parse_task_id
from rounds.envs.household.world import TASK_SHORT_NAMES, TaskType


def run_expert(env: HouseholdEnv, task_id: str) -> tuple[list[str], dict]:
    env.reset(options={"task_id": task_id})
    actions: list[str] = []
    while True:
        action = expert_command(env.world)
        actions.append(action)
        _, _, terminated, truncated, info = env.step(action)
        assert not info["invalid_action"], (task_id, action)
        if terminated or truncated:
            return actions, info


def test_every_registered_env_passes_check_env() -> None:
    from gymnasium.utils.env_checker import check_env

    from rounds.registration import BUILTIN_ENVS

    ids = list(BUILTIN_ENVS)
    assert {"rounds/Household-v0", "rounds/DiagGym-v0"} <= set(ids)
    for env_id in ids:
        env = gym.make(env_id)
        check_env(env.unwrapped)
        env.close()


def test_only_built_envs_are_registered() -> None:
    """``import rounds`` registers exactly the built envs, each of which loads."""
    from rounds.registration import BUILTIN_ENVS, CLIENT_ENVS, env_class

    ours = sorted(k for k in gym.registry if k.startswith("rounds/") and k not in CLIENT_ENVS)
    assert ours == sorted(BUILTIN_ENVS)
    assert {"rounds/DiagGym-v0", "rounds/Household-v0"} <= set(ours)
    for env_id in ours:
        assert env_class(env_id).__module__.startswith("rounds.envs.")


def test_expert_solves_every_generated_task_over_600_seeds() -> None:
    env = HouseholdEnv()
    ids = list(env.task_ids("test")) + list(env.task_ids("validation"))
    assert len(ids) == 1200
    lengths = []
    for task_id in ids:
        actions, info = run_expert(env, task_id)
        assert info["outcome"] == 1.0 and info["metrics"]["success"] == 1.0, task_id
        assert info["metrics"]["subgoal_fraction"] == 1.0
        lengths.append(len(actions))
    assert max(lengths) < 50


def test_expert_solves_sampled_train_tasks_in_single_room_homes() -> None:
    env = HouseholdEnv(max_rooms=1)
    for seed in range(300):
        env.reset(seed=seed)
        _, info = run_expert(env, env.task_id)  # type: ignore[arg-type]
        assert info["outcome"] == 1.0


def test_expert_finishes_a_task_someone_else_started() -> None:
    env = HouseholdEnv()
    rng = np.random.default_rng(0)
    policy = env.scripted_policies()["random"]
    for task_id in env.task_ids("test")[:60]:
        env.reset(options={"task_id": task_id})
        for _ in range(15):
            env.step(policy(env, rng))
        if env.world.goal_reached():
            continue
        for _ in range(40):
            _, _, terminated, _, info = env.step(expert_command(env.world))
            assert not info["invalid_action"]
            if terminated:
                break
        assert env.world.goal_reached(), task_id


def test_same_task_same_episode_byte_for_byte() -> None:
    a, b = HouseholdEnv(), HouseholdEnv()
    for seed in (0, 1, 99):
        obs_a, info_a = a.reset(seed=seed)
        obs_b, info_b = b.reset(seed=seed)
        assert obs_a == obs_b and info_a == info_b
        for action in ["look", "go to countertop 1", "inventory", "open cabinet 1"]:
            assert a.step(action)[0] == b.step(action)[0]
    assert a.reset(seed=0)[0] != a.reset(seed=1)[0]


def test_task_ids_cover_all_types_and_splits_are_disjoint() -> None:
    env = HouseholdEnv()
    test_ids = env.task_ids("test")
    assert len(test_ids) == len(TASK_SHORT_NAMES) * SPLIT_SIZES["test"]
    assert {parse_task_id(t)[0] for t in test_ids[:6]} == set(TaskType)
    assert not set(test_ids) & set(env.task_ids("validation"))
    restricted = HouseholdEnv(task_types=["heat"])
    assert all(t.startswith("heat-") for t in restricted.task_ids("train"))
    with pytest.raises(ValueError, match="bad household task id"):
        env.reset(options={"task_id": "boil-test-0001"})
    with pytest.raises(ValueError, match="unknown task types"):
        HouseholdEnv(task_types=["boil"])


@pytest.mark.parametrize("short", list(TASK_SHORT_NAMES))
def test_goal_does_not_hold_at_start(short: str) -> None:
    env = HouseholdEnv()
    for task_id in env.task_ids("train")[:300]:
        if task_id.startswith(short + "-"):
            env.reset(options={"task_id": task_id})
            assert not env.world.goal_reached(), task_id
            assert env.world.task.task_type is TASK_SHORT_NAMES[short]


def test_every_admissible_command_is_valid() -> None:
    env = HouseholdEnv()
    rng = np.random.default_rng(1)
    for task_id in env.task_ids("validation")[:30]:
        env.reset(options={"task_id": task_id})
        for _ in range(8):
            commands = env.world.admissible_commands()
            for command in commands:
                probe = copy.deepcopy(env, memo={id(env.catalog): env.catalog})
                _, _, _, _, info = probe.step(command)
                assert not info["invalid_action"], (task_id, command)
            env.step(commands[int(rng.integers(len(commands)))])


@pytest.mark.parametrize(
    ("action", "needle"),
    [
        ("", "empty"),
        ("x" * 1_000_000, "1,000,000 characters"),
        ("\x00\x9f\ud83d garbage \x07", "don't understand"),
        ("\u202e\u2066 go to \u0000", "no"),
        ("take banana 7 from countertop 1", "not at the countertop 1"),
        ("go to spaceship 1", "not seen a 'spaceship 1'"),
        ("put apple 1 in fridge 1", "not carrying anything"),
        ("close fridge 1", "not at the fridge 1"),
        ("heat apple 1 with sinkbasin 1", "cannot heat"),
        ("use television 1", "no television"),
        ("dance wildly", "don't understand"),
    ],
)
def test_bad_input_gets_helpful_observation(action: str, needle: str) -> None:
    env = HouseholdEnv()
    env.reset(options={"task_id": "heat-test-0003"})
    observation, reward, terminated, truncated, info = env.step(action)
    assert info["invalid_action"] is True
    assert needle in observation
    assert "Valid commands now include:" in observation
    assert reward == pytest.approx(-0.1)
    assert not terminated and not truncated
    assert info["admissible_commands"]


def test_valid_command_in_wrong_state_is_invalid() -> None:
    env = HouseholdEnv()
    env.reset(options={"task_id": "heat-test-0003"})
    env.step("go to fridge 1")
    observation, *_, info = env.step("close fridge 1")
    assert info["invalid_action"] and "already closed" in observation
    env.step("open fridge 1")
    observation, *_, info = env.step("open fridge 1")
    assert info["invalid_action"] and "already open" in observation


def test_episode_truncates_at_step_limit() -> None:
    env = HouseholdEnv(max_turns=50)
    env.reset(seed=3)
    for turn in range(1, 51):
        _, _, terminated, truncated, info = env.step("nonsense")
        assert not terminated
        assert truncated == (turn == 50)
    assert info["outcome"] == 0.0 and info["metrics"]["invalid_actions"] == 50


def test_lenient_parsing_of_names_and_synonyms() -> None:
    env = HouseholdEnv()
    env.reset(options={"task_id": "heat-test-0003"})
    assert not env.step("Go To The Fridge.")[4]["invalid_action"]
    assert env.world.at == "fridge 1"
    assert not env.step("> open fridge1")[4]["invalid_action"]
    observation, *_, info = env.step("go to cabinet")
    assert info["invalid_action"] and "cabinet 1" in observation


def test_progress_component_sums_to_one_and_potential_tracks_it() -> None:
    env = HouseholdEnv(reward_weights={"progress": 1.0})
    for task_id in env.task_ids("test")[:12]:
        env.reset(options={"task_id": task_id})
        total_progress = 0.0
        while True:
            _, reward, terminated, truncated, info = env.step(expert_command(env.world))
            total_progress += info["reward_components"]["progress"]
            assert info["potential"] == pytest.approx(total_progress)
            if terminated or truncated:
                break
        assert total_progress == pytest.approx(1.0)


def test_meta_reasoning_rewards_fitting_tags_and_penalises_empty_ones() -> None:
    env = HouseholdEnv(meta_reasoning=True, meta_reasoning_bonus=0.1)
    env.reset(options={"task_id": "heat-test-0003"})
    assert "<plan>" in env.system_prompt
    comps = lambda a: env.step(a)[4]["reward_components"]["meta_reasoning"]  # noqa: E731
    assert comps("<plan>find the tomato, heat it, store it</plan>\nlook") == pytest.approx(0.1)
    assert comps("<plan>again</plan>\nlook") == 0.0  # a plan fits only at the start
    assert comps("<explore>check the fridge</explore>\ngo to fridge 1") == pytest.approx(0.1)
    assert comps("<explore>already been here</explore>\nlook") == 0.0
    env.step("take unicorn 1 from fridge 1")  # a failed command
    assert comps("<reflect>there is no unicorn</reflect>\nopen fridge 1") == pytest.approx(0.1)
    assert comps("<reflect>nothing failed</reflect>\nlook") == 0.0
    assert comps("<reflect>  </reflect>\nlook") == pytest.approx(-0.1)
    off = HouseholdEnv()
    off.reset(options={"task_id": "heat-test-0003"})
    assert off.step("<plan>x</plan> look")[4]["reward_components"]["meta_reasoning"] == 0.0
    assert "<plan>" not in off.system_prompt


def test_examine_in_light_requires_lamp_on_while_holding() -> None:
    env = HouseholdEnv(task_types=["look"])
    env.reset(options={"task_id": "look-test-0000"})
    world = env.world
    lamp = next(i for i in world.items.values() if i.is_lamp)
    env.step(f"go to {lamp.location}")
    _, _, terminated, _, _ = env.step(f"use {lamp.name}")
    assert lamp.switched_on and not terminated  # not holding the object yet
    actions, info = run_expert(env, "look-test-0000")
    assert info["outcome"] == 1.0


def test_variants_and_make() -> None:
    env = rounds.make("rounds/Household-v0", variant="single-room")
    assert env.unwrapped.max_rooms == 1
    env = rounds.make("rounds/Household-v0", variant="heat", max_turns=10)
    assert env.unwrapped.task_types == ("heat",) and env.unwrapped.max_turns == 10
    with pytest.raises(KeyError, match="no variant"):
        rounds.make("rounds/Household-v0", variant="nope")
    with pytest.raises(KeyError, match="Unknown env"):
        rounds.make("rounds/Nope-v0")


def test_unseen_objects_are_not_confirmed_by_name() -> None:
    """``examine cup 1`` before any cup was seen answers as for a cup that does not exist."""
    env = HouseholdEnv(max_turns=1000)
    for task_id in ("heat-test-0003", "look-test-0001", "pick_two-test-0002"):
        env.reset(options={"task_id": task_id})
        world = env.world
        for name in world.items:
            kind = world.items[name].kind
            ghost = f"{kind} 97"
            assert ghost not in world.items
            for verb in ("examine {}", "go to {}", "open {}"):
                seen_before = set(world.seen)
                real, *_, real_info = env.step(verb.format(name))
                fake, *_ = env.step(verb.format(ghost))
                assert real_info["invalid_action"], (task_id, verb, name)
                assert real.replace(name, "X") == fake.replace(ghost, "X"), (task_id, verb, name)
                assert world.seen == seen_before
        # once seen, the object is named as what it is
        rec = next(r for r in world.receptacles.values() if r.contents and not r.openable)
        env.step(f"go to {rec.name}")
        seen = rec.contents[0]
        observation, *_ = env.step(f"go to {seen}")
        assert f"The {seen} is an object" in observation
        observation, *_, info = env.step(f"examine {seen}")
        assert not info["invalid_action"]


def test_small_homes_keep_what_the_task_needs_and_leave_full_homes_unchanged() -> None:
    """``max_receptacles`` prunes a home to the places the task needs plus others up to the
    limit; without it a task id builds the very same home as before."""
    full, small = HouseholdEnv(max_rooms=1), HouseholdEnv(max_rooms=1, max_receptacles=4)
    assert HouseholdEnv(max_rooms=1).reset(seed=3)[0] == full.reset(seed=3)[0]
    for task_id in full.task_ids("validation")[:120]:
        full.reset(options={"task_id": task_id})
        small.reset(options={"task_id": task_id})
        world, task = small.world, small.world.task
        assert set(world.receptacles) <= set(full.world.receptacles)
        assert len(world.receptacles) <= 4 or len(world.receptacles) < len(full.world.receptacles)
        same = ("task_type", "object_kind", "receptacle_kind")
        assert [getattr(task, a) for a in same] == [getattr(full.world.task, a) for a in same]
        assert any(i.kind == task.object_kind for i in world.items.values()), task_id
        if task.receptacle_kind is not None:
            assert world.receptacles_of(task.receptacle_kind), task_id
        _, info = run_expert(small, task_id)
        assert info["metrics"]["success"] == 1.0, task_id
    with pytest.raises(ValueError, match="max_receptacles"):
        HouseholdEnv(max_receptacles=0)
    assert rounds.make("rounds/Household-v0", variant="small").unwrapped.max_receptacles == 4


def test_searcher_solves_tasks_from_what_it_has_seen() -> None:
    """The searcher finishes every task type without an invalid command, and, unlike the
    expert, explores: it visits places where the task's object is not."""
    env = HouseholdEnv()
    searcher = env.scripted_policies()["searcher"]
    rng = np.random.default_rng(0)
    detours = 0
    for task_id in env.task_ids("test")[:90]:
        env.reset(options={"task_id": task_id})
        homes = {
            i.location for i in env.world.items.values() if i.kind == env.world.task.object_kind
        }
        for _ in range(50):
            _, _, terminated, truncated, info = env.step(searcher(env, rng))
            assert not info["invalid_action"], task_id
            if terminated or truncated:
                break
        assert info["metrics"]["success"] == 1.0, task_id
        detours += bool(
            env.world.visited
            - homes
            - set(env.world.receptacles_of(env.world.task.receptacle_kind or ""))
        )
    assert detours > 30


def test_choice_mode_rejection_does_not_repeat_the_listed_commands() -> None:
    """In the choice action mode an invalid reply's message is followed by the numbered
    commands; the text mode's hint (a few valid commands) would only repeat them."""
    text = HouseholdEnv(max_rooms=1)
    choice = HouseholdEnv(max_rooms=1, action_mode="choice")
    text.reset(seed=0)
    choice.reset(seed=0)
    assert "Valid commands now include" in text.step("fly away")[0]
    observation = choice.step("fly away")[0]
    assert "Valid commands now include" not in observation
    assert observation.count("\n1. ") == 1


def test_choice_listing_acting_numbers_only_commands_that_change_the_home() -> None:
    """``choice_listing="acting"`` leaves look, inventory and examine out of the numbered
    list (they stay valid as text); the numbers select the listed commands."""
    env = HouseholdEnv(max_rooms=1, action_mode="choice", choice_listing="acting")
    observation, _ = env.reset(seed=0)
    listed = env.choices
    assert listed and all(not c.startswith(("look", "inventory", "examine")) for c in listed)
    assert set(listed) < set(env.admissible_commands())
    assert "1. " + listed[0] in observation and "inventory" not in observation.split("Commands:")[1]
    assert not env.step("look")[4]["invalid_action"]
    observation, _, _, _, info = env.step(str(len(env.choices)))
    assert not info["invalid_action"] and observation.startswith("You arrive at")
    with pytest.raises(ValueError, match="choice_listing"):
        HouseholdEnv(choice_listing="some")
