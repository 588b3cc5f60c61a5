"""rounds/GUI-v0 with the built-in apps: contract, tasks, verifiers, rewards, baselines."""

from __future__ import annotations

import io
import itertools
import re

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from PIL import Image

import rounds
from rounds.envs.gui.apps import APP_NAMES, TEMPLATES, generate_device
from rounds.envs.gui.env import GUIEnv
from rounds.envs.gui.expert import expert_policy, random_policy
from rounds.envs.gui.tasks import normalise_answer
from rounds.envs.gui.widgets import SCREEN_HEIGHT, SCREEN_WIDTH, accessibility_text
from rounds.shaping import potential_shaping

LINE = re.compile(r"^\[(\d+)\] (\w+)(?: \"((?:[^\"\\]|\\.)*)\")?.*@\((\d+),(\d+),(\d+),(\d+)\)$")


def make(**kwargs: object) -> GUIEnv:
    env = gym.make("rounds/GUI-v0", **kwargs).unwrapped
    assert isinstance(env, GUIEnv)
    return env


def elements(observation: str) -> dict[str, tuple[int, str, tuple[int, int, int, int]]]:
    """label -> (id, role, box) of the elements listed in an observation."""
    found = {}
    for line in observation.splitlines():
        match = LINE.match(line.strip())
        if match:
            box = tuple(int(match.group(i)) for i in range(4, 8))
            found[match.group(3) or ""] = (int(match.group(1)), match.group(2), box)
    return found


def run(env: GUIEnv, policy: object, task_id: str, seed: int = 0) -> tuple[float, dict]:
    env.reset(options={"task_id": task_id})
    rng = np.random.default_rng(seed)
    total = 0.0
    while True:
        action = policy(env, rng)  # type: ignore[operator]
        _, reward, terminated, truncated, info = env.step(action)
        total += float(reward)
        if terminated or truncated:
            return total, info


def test_registered_and_passes_the_env_checker() -> None:
    env = gym.make("rounds/GUI-v0")
    check_env(env.unwrapped, skip_render_check=True)
    assert "rounds/GUI-v0" in gym.registry


def test_six_apps_and_at_least_forty_templates() -> None:
    assert set(APP_NAMES) == {"settings", "contacts", "calendar", "shop", "mail", "files"}
    assert len(TEMPLATES) >= 40
    assert {t.app for t in TEMPLATES.values()} == set(APP_NAMES)
    env = make()
    assert len(env.task_ids("test")) == 50 * len(TEMPLATES)


def test_same_task_same_episode_byte_for_byte() -> None:
    first, second = make(observation="both"), make(observation="both")
    for env in (first, second):
        env.reset(seed=7)
    actions = ["click(2)", "click(3)", "scroll(down)", "back()", "click(4)"]
    for action in actions:
        a, b = first.step(action), second.step(action)
        assert a[0] == b[0] and a[1] == b[1]
        assert a[4]["screenshot"] == b[4]["screenshot"]


@pytest.mark.slow
def test_expert_solves_every_template_over_many_draws() -> None:
    env = make()
    turns = []
    for name in TEMPLATES:
        for index in range(25):
            _, info = run(env, expert_policy, f"{name}-train-{index}", seed=index)
            assert info["metrics"]["success"] == 1.0, (name, index, env.goal)
            assert info["metrics"]["invalid_actions"] == 0.0
            assert info["metrics"]["subgoal_fraction"] == 1.0, (name, index)
            turns.append(env.turn)
    assert np.mean(turns) < 10


def test_expert_also_solves_the_held_out_splits() -> None:
    env = make()
    for name in TEMPLATES:
        _, info = run(env, expert_policy, f"{name}-test-3")
        assert info["outcome"] == 1.0, name


def test_random_policy_is_a_low_floor() -> None:
    env = make(max_turns=20)
    ids = env.task_ids("validation")
    rng = np.random.default_rng(0)
    successes = [
        run(env, random_policy, ids[int(i)], seed=int(i))[1]["metrics"]["success"]
        for i in rng.choice(len(ids), 60, replace=False)
    ]
    assert np.mean(successes) < 0.15


def test_verifier_checks_the_final_state_not_the_clicks() -> None:
    env = make()
    env.reset(options={"task_id": "settings.theme-train-0"})
    # Reach the goal with the expert, then undo part of it before finishing.
    rng = np.random.default_rng(0)
    while env.backend.task.plan(env.backend.device):  # type: ignore[attr-defined]
        env.step(expert_policy(env, rng))
    settings = env.backend.device.app("settings")  # type: ignore[attr-defined]
    dark_key = "dark_mode"
    screen = env.backend.screen()
    widget = screen.by_key(dark_key)
    assert widget is not None and widget.visible
    _, _, _, _, info = env.step(f"click({widget.id})")
    assert "subgoals_reached" not in info  # credit came once, earlier
    _, reward, terminated, _, info = env.step("finish()")
    assert terminated and info["outcome"] == 0.0 and info["metrics"]["success"] == 0.0
    assert settings.dark_mode != ("on" in env.goal.split("dark mode")[0])


def test_a_wrong_answer_scores_nothing_and_the_right_one_scores() -> None:
    env = make()
    obs, info = env.reset(options={"task_id": "contacts.phone_question-train-2"})
    assert info["answer"] not in obs  # the answer is never shown before it is looked up
    _, _, terminated, _, info = env.step('finish("+1 555 000 0000")')
    assert terminated and info["outcome"] == 0.0 and info["final_answer"] == "+1 555 000 0000"
    _, info = env.reset(options={"task_id": "contacts.phone_question-train-2"})
    _, _, _, _, final = env.step(f"finish({info['answer']!r})")
    assert final["outcome"] == 1.0


def test_truncation_scores_no_outcome_even_in_the_goal_state() -> None:
    env = make(max_turns=3)
    env.reset(options={"task_id": "settings.wifi-train-1"})
    rng = np.random.default_rng(0)
    info: dict = {}
    for _ in range(3):
        _, _, terminated, truncated, info = env.step(expert_policy(env, rng))
    assert truncated and not terminated
    assert env.backend.success(None)
    assert info["outcome"] == 0.0


def test_subgoal_rewards_come_once_and_sum_to_one_with_the_potential() -> None:
    env = make(observation="a11y")
    _, info = env.reset(options={"task_id": "mail.forward-train-1"})
    potentials, subgoal_total = [info["potential"]], 0.0
    rng = np.random.default_rng(0)
    while True:
        _, reward, terminated, truncated, info = env.step(expert_policy(env, rng))
        subgoal_total += info["reward_components"]["subgoal"]
        potentials.append(info["potential"])
        expected = sum(env.reward_weights[k] * v for k, v in info["reward_components"].items())
        assert reward == pytest.approx(expected)
        if terminated or truncated:
            break
    assert subgoal_total == pytest.approx(1.0)
    assert potentials[0] == 0.0 and potentials[-1] == 1.0
    assert all(b >= a for a, b in itertools.pairwise(potentials))
    shaped = potential_shaping(potentials, gamma=1.0, terminal=True)
    assert sum(shaped) == pytest.approx(-potentials[0])


def test_accessibility_text_matches_the_screen_and_click_by_point_hits_the_same_widget() -> None:
    for index in range(6):
        by_id, by_point = make(), make()
        obs, _ = by_id.reset(options={"task_id": f"shop.buy-train-{index}"})
        by_point.reset(options={"task_id": f"shop.buy-train-{index}"})
        rng = np.random.default_rng(index)
        for _ in range(6):
            action = expert_policy(by_id, rng)
            match = re.fullmatch(r"click\((\d+)\)", action)
            if match:
                screen = by_point.backend.screen()
                widget = screen.by_id(int(match.group(1)))
                assert widget is not None
                x1, y1, x2, y2 = widget.box
                point = f"click({(x1 + x2) // 2}, {(y1 + y2) // 2})"
                a, b = by_id.step(action), by_point.step(point)
            else:
                a, b = by_id.step(action), by_point.step(action)
            assert a[0] == b[0]


def test_every_listed_element_lies_on_screen_and_ids_are_unique() -> None:
    env = make()
    rng = np.random.default_rng(1)
    ids = env.task_ids("train")
    for _draw in range(40):
        obs, _ = env.reset(options={"task_id": ids[int(rng.integers(len(ids)))]})
        for _ in range(8):
            listed = [LINE.match(line.strip()) for line in obs.splitlines()]
            numbers = [int(m.group(1)) for m in listed if m]
            assert len(numbers) == len(set(numbers)) > 0
            for m in listed:
                if m:
                    x1, y1, x2, y2 = (int(m.group(i)) for i in range(4, 8))
                    assert 0 <= x1 < x2 <= SCREEN_WIDTH and 0 <= y1 < y2 <= SCREEN_HEIGHT
            obs, *_ = env.step(random_policy(env, rng))
            if env._done:
                break


def test_screenshot_modes() -> None:
    env = make(observation="screenshot")
    obs, info = env.reset(options={"task_id": "files.rename-train-0"})
    image = Image.open(io.BytesIO(info["screenshot"]))
    assert image.format == "PNG" and image.size == (SCREEN_WIDTH, SCREEN_HEIGHT)
    assert "[1]" not in obs and "Screen: Home" in obs
    both = make(observation="both")
    obs, info = both.reset(options={"task_id": "files.rename-train-0"})
    assert '[2] listitem "Settings"' in obs and info["screenshot"].startswith(b"\x89PNG")
    plain = make()
    _, info = plain.reset(options={"task_id": "files.rename-train-0"})
    assert "screenshot" not in info
    assert "screenshot" in GUIEnv.unrecorded_info_keys


def test_dark_mode_changes_the_screenshot() -> None:
    env = make(observation="screenshot")
    env.reset(options={"task_id": "settings.theme-train-0"})
    settings = env.backend.device.app("settings")  # type: ignore[attr-defined]
    before = Image.open(io.BytesIO(env.backend.screenshot())).getpixel((200, 600))
    settings.dark_mode = not settings.dark_mode
    env.backend.device.changed()  # type: ignore[attr-defined]
    after = Image.open(io.BytesIO(env.backend.screenshot())).getpixel((200, 600))
    assert before != after


def test_dialogs_are_modal_and_back_closes_them() -> None:
    env = make()
    env.reset(options={"task_id": "contacts.delete-train-0"})
    rng = np.random.default_rng(0)
    while env.backend.device.modal is None:  # type: ignore[attr-defined]
        env.step(expert_policy(env, rng))
    obs = env._last_observation
    assert "A dialog is open" in obs and 'button "Delete"' in obs
    _, _, _, _, info = env.step("click(5)")  # an element behind the dialog
    assert info["invalid_action"] and "behind the open dialog" in env._last_observation
    env.step("back()")
    assert env.backend.device.modal is None  # type: ignore[attr-defined]


def test_scrolling_reveals_hidden_elements() -> None:
    env = make()
    env.reset(options={"task_id": "settings.ringtone-train-0"})
    env.step("click(2)")
    obs, *_ = env.step(f"click({elements(env._last_observation)['Sound'][0]})")
    assert "more elements below" in obs
    hidden = env.backend.screen().elements[-1]
    _, _, _, _, info = env.step(f"click({hidden.id})")
    assert info["invalid_action"] and "scroll(down)" in env._last_observation
    env.step("scroll(down)")
    env.step("scroll(down)")
    assert env.backend.screen().by_id(hidden.id).visible  # type: ignore[union-attr]


def test_snapshot_restore_replays_byte_for_byte() -> None:
    env = make(observation="both")
    env.reset(options={"task_id": "calendar.create-train-4"})
    rng = np.random.default_rng(0)
    for _ in range(3):
        env.step(expert_policy(env, rng))
    snapshot = env.snapshot()
    actions = [expert_policy(env, np.random.default_rng(0)) for _ in range(1)]
    first = [env.step(a) for a in [*actions, 'type(3, "x")', "back()"]]
    env.restore(snapshot)
    second = [env.step(a) for a in [*actions, 'type(3, "x")', "back()"]]
    for a, b in zip(first, second, strict=True):
        assert a[0] == b[0] and a[1] == b[1] and a[4]["screenshot"] == b[4]["screenshot"]


def test_one_hidden_state_per_episode() -> None:
    """Contacts and mail share one set of people; app data is drawn from the task id."""
    for seed in range(30):
        device = generate_device(np.random.default_rng(seed))
        addresses = {c.email for c in device.app("contacts").contacts}
        senders = {m.address for m in device.app("mail").messages}
        assert senders <= addresses
        text = accessibility_text(device.screen())
        assert text.count("listitem") == len(APP_NAMES)


def test_answers_are_compared_leniently_but_strictly() -> None:
    assert normalise_answer(' "$3.49". ') == normalise_answer("$3.49")
    assert normalise_answer("3") != normalise_answer("4")
    env = make()
    _, info = env.reset(options={"task_id": "shop.price_question-train-0"})
    env.step(f'finish("{info["answer"].lstrip("$")}")')
    assert env.backend.success(info["answer"].lstrip("$"))
    assert not env.backend.success("0.00")


def test_variants_and_arguments() -> None:
    env = rounds.make("rounds/GUI-v0", variant="settings").unwrapped
    assert all(t.startswith("settings.") for t in env.task_ids("test"))
    with pytest.raises(ValueError, match="observation mode"):
        make(observation="video")
    with pytest.raises(ValueError, match="backend"):
        make(backend="android")
    with pytest.raises(ValueError, match="unknown apps"):
        make(apps=["browser"])
    with pytest.raises(ValueError, match="out of range"):
        make().reset(options={"task_id": "settings.theme-train-5000"})
    with pytest.raises(ValueError, match="unknown GUI task id"):
        make().reset(options={"task_id": "settings.nothing-train-0"})
    assert GUIEnv.replay_metrics and GUIEnv.replay_series == ("potential",)


def test_invariants_over_thousands_of_random_steps() -> None:
    """The tree, hit-testing and sub-goal credit agree on one hidden state, whatever is clicked."""
    env = make(max_turns=12)
    ids = env.task_ids("train")
    rng = np.random.default_rng(2024)
    steps = 0
    for _ in range(300):
        env.reset(options={"task_id": ids[int(rng.integers(len(ids)))]})
        potential = 0.0
        while True:
            screen = env.backend.screen()
            reachable = screen.interactive()
            for widget in reachable:
                x1, y1, x2, y2 = widget.box
                assert 0 <= x1 < x2 <= SCREEN_WIDTH and 0 <= y1 < y2 <= SCREEN_HEIGHT
                if widget.clickable:
                    assert screen.at((x1 + x2) // 2, (y1 + y2) // 2) is widget
            text = env._last_observation
            if screen.modal() is not None:
                shown = {
                    int(m) for m in re.findall(r"\[(\d+)\]", text.split("only its elements")[-1])
                }
                assert shown == {w.id for w in reachable}
            _, _, terminated, truncated, info = env.step(random_policy(env, rng))
            steps += 1
            assert info["potential"] >= potential
            potential = info["potential"]
            if terminated or truncated:
                assert info["metrics"]["subgoal_fraction"] == pytest.approx(potential)
                break
    assert steps > 2000


def test_hedged_or_negated_answers_do_not_score() -> None:
    env = make()
    _, info = env.reset(options={"task_id": "contacts.phone_question-train-5"})
    phone = info["answer"]
    for answer in (f"not {phone}", f"{phone} or +1 555 000 0000", f"maybe {phone}"):
        assert not env.backend.success(answer), answer
    assert env.backend.success(f'"{phone}".') and env.backend.success(phone.replace(" ", ""))
    _, info = env.reset(options={"task_id": "calendar.time_question-train-5"})
    assert env.backend.success(info["answer"])
    assert not env.backend.success(f"around {info['answer']}")
    _, info = env.reset(options={"task_id": "files.count_question-train-5"})
    assert not env.backend.success(f"{info['answer']} or {int(info['answer']) + 1}")


def test_expert_recovers_from_random_detours_and_never_loops() -> None:
    """From states a few random actions away, the expert still finishes (it gives up on a
    task the detour made impossible, e.g. a file moved away, instead of looping)."""
    env = make(max_turns=80)
    wins = runs = 0
    for name in TEMPLATES:
        for index in range(10):
            env.reset(options={"task_id": f"{name}-train-{index}"})
            rng = np.random.default_rng(index)
            for _ in range(6):
                action = random_policy(env, rng)
                if not action.startswith("finish"):
                    env.step(action)
            while True:
                _, _, terminated, truncated, info = env.step(expert_policy(env, rng))
                if terminated or truncated:
                    break
            assert terminated, (name, index)
            wins += int(info["metrics"]["success"])
            runs += 1
    assert wins / runs > 0.9


def test_screenshot_draws_each_widget_where_the_tree_says() -> None:
    from rounds.envs.gui.render import DARK, LIGHT

    env = make(observation="screenshot")
    rng = np.random.default_rng(5)
    ids = env.task_ids("train")
    checked = 0
    for _ in range(15):
        _, info = env.reset(options={"task_id": ids[int(rng.integers(len(ids)))]})
        for _ in range(5):
            screen = env.backend.screen()
            if screen.modal() is None:
                dark = env.backend.device.app("settings").dark_mode  # type: ignore[attr-defined]
                palette = DARK if dark else LIGHT
                accent = Image.new("RGB", (1, 1), palette.accent).getpixel((0, 0))
                image = Image.open(io.BytesIO(info["screenshot"])).convert("RGB")
                for widget in screen.elements:
                    if widget.visible and widget.role == "button" and widget.enabled:
                        x1, y1, x2, y2 = widget.box
                        if widget.key == "back" or y1 < 48:
                            continue
                        assert image.getpixel((x1 + 10, y1 + 3)) == accent, widget.label
                        checked += 1
            _, _, terminated, truncated, info = env.step(expert_policy(env, rng))
            if terminated or truncated:
                break
    assert checked > 20
