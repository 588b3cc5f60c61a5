"""rounds/GUI-v0 never raises on an action: each bad input gets a helpful observation."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest

import rounds  # registers the envs
from rounds.envs.gui.commands import parse_action
from rounds.envs.gui.env import GUIEnv
from rounds.envs.gui.expert import expert_policy


def fresh(task_id: str = "contacts.add-train-0", **kwargs: object) -> GUIEnv:
    env = gym.make("rounds/GUI-v0", **kwargs).unwrapped
    assert isinstance(env, GUIEnv)
    env.reset(options={"task_id": task_id})
    return env


def step_invalid(env: GUIEnv, action: object) -> str:
    observation, reward, terminated, truncated, info = env.step(action)  # type: ignore[arg-type]
    assert info["invalid_action"] is True
    assert info["reward_components"]["invalid_action"] == -env.invalid_action_penalty
    assert float(reward) == pytest.approx(-env.invalid_action_penalty)
    assert not terminated
    assert "Screen:" in observation  # the screen comes with the reason
    return observation


def open_form(env: GUIEnv) -> None:
    """Go to the new-contact form (the expert's first steps)."""
    rng = np.random.default_rng(0)
    while env.backend.device.route != ("contacts", "new"):  # type: ignore[attr-defined]
        env.step(expert_policy(env, rng))


@pytest.mark.parametrize(
    ("action", "says"),
    [
        ("click(0, 0)", "nothing clickable at (0, 0)"),
        ("click(400, 10)", "outside the 360x640 screen"),
        ("click(-5, 700)", "outside the 360x640 screen"),
        ("click(99)", "no element [99]"),
        ("click(1)", "does nothing when clicked"),
        ("click(1e9)", "no element"),
        ('type(2, "hello")', "not a text field"),
        ("scroll(left)", "up or down"),
        ("swipe(up)", "Unknown action"),
        ("open the settings app", "is not an action"),
        ('{"name": "click", "arguments": {"id": 3}', "not valid JSON"),
        ('{"name": "click", "arguments": "{id: 3}"}', "not valid JSON"),
        ('{"arguments": {"id": 3}}', '"name"'),
        ('<tool_call>{"name": "type", "arguments": {"id": 2}}</tool_call>', "type needs"),
        ("click(id=true)", "whole number"),
        ("click()", "click needs"),
        ("<think>I will tap settings", "no action after the reasoning"),
    ],
)
def test_bad_actions_are_explained(action: str, says: str) -> None:
    observation = step_invalid(fresh(), action)
    assert says.lower() in observation.lower()


def test_disabled_and_hidden_elements_and_non_text_widgets() -> None:
    env = fresh()
    open_form(env)
    screen = env.backend.screen()
    save = screen.by_key("save")
    assert save is not None and not save.enabled
    assert "disabled" in step_invalid(env, f"click({save.id})")
    x1, y1, x2, y2 = save.box
    assert "disabled" in step_invalid(env, f"click({(x1 + x2) // 2}, {(y1 + y2) // 2})")
    assert "not a text field" in step_invalid(env, f'type({save.id}, "x")')
    # A widget scrolled out of view cannot be clicked until it is scrolled in.
    env = fresh("settings.language-train-0")
    env.step("click(2)")
    language = env.backend.screen().by_key("section:language")
    assert language is not None
    env.step(f"click({language.id})")
    hidden = [w for w in env.backend.screen().elements if not w.visible]
    assert hidden
    assert "scrolled out of view" in step_invalid(env, f"click({hidden[-1].id})")


def test_a_megabyte_of_text_is_rejected_without_harm() -> None:
    env = fresh()
    open_form(env)
    name = env.backend.screen().by_key("field:name")
    assert name is not None
    megabyte = "A" * 1_000_000
    observation = step_invalid(env, f'type({name.id}, "{megabyte}")')
    assert "characters long" in observation and len(observation) < 5000
    long_text = "B" * 5_000
    env_wide = fresh(max_action_chars=2_000_000)
    open_form(env_wide)
    name = env_wide.backend.screen().by_key("field:name")
    assert name is not None
    observation = step_invalid(env_wide, f'type({name.id}, "{long_text}")')
    assert "takes at most 60" in observation
    assert env_wide.backend.screen().by_key("field:name").value == ""  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "action",
    [
        None,
        b"\xff\xfe",
        "",
        "\x00\x01",
        "click(" * 5000,
        "type(3, " + "[" * 3000 + ")",
        '{"name": ' * 2000,
        json.dumps({"name": "type", "arguments": {"id": 3, "text": {"nested": [1, 2]}}}),
        "click(\udcff)",
        "finish(" + "9" * 5000 + ")",
        "click(99999999999999999999999)",
        '{"name": "click", "arguments": {"id": ' + "9" * 5000 + "}}",
        '{"name": "click", "arguments": "{\\"id\\": ' + "9" * 5000 + '}"}',
        "click(" + "9" * 5000 + ")",
    ],
)
def test_hostile_actions_never_raise(action: object) -> None:
    for mode in ("a11y", "both"):
        env = fresh(observation=mode)
        observation, _, _, _, info = env.step(action)  # type: ignore[arg-type]
        assert isinstance(observation, str) and observation
        assert isinstance(info["invalid_action"], bool)


def test_random_streams_of_text_never_raise() -> None:
    env = fresh()
    rng = np.random.default_rng(0)
    alphabet = list('click(type scroll back finish 0123456789,"{}[]:) \n<>/\\xyz')
    for _ in range(400):
        text = "".join(rng.choice(alphabet, size=int(rng.integers(1, 40))))
        _, _, terminated, truncated, _ = env.step(text)
        if terminated or truncated:
            env.reset(options={"task_id": "contacts.add-train-0"})


def test_valid_forms_parse_to_the_same_action() -> None:
    same = [
        "click(3)",
        "Click(3).",
        "tap(id=3)",
        "<think>the third one</think>\nclick(3)",
        '{"name": "click", "arguments": {"id": 3}}',
        '{"name": "click", "arguments": "{\\"id\\": \\"3\\"}"}',
        '<tool_call>{"name": "click", "arguments": {"id": 3}}</tool_call>',
        "Action: click([3])",
    ]
    assert len({parse_action(text) for text in same}) == 1
    assert parse_action('type(4, "Ana, Lima")').text == "Ana, Lima"
    assert parse_action("type(4, Ana Lima)").text == "Ana Lima"
    assert parse_action("scroll down").direction == "down"
    assert parse_action("click(10, 20)").x == 10
    assert parse_action('finish("3")').text == "3"


def test_after_the_episode_ends_actions_are_refused_politely() -> None:
    env = fresh()
    env.step("finish()")
    observation, reward, terminated, _, info = env.step("click(2)")
    assert terminated and reward == 0.0 and info["invalid_action"]
    assert "reset()" in observation


def test_every_registered_variant_accepts_garbage() -> None:
    for variant in ("screenshot", "both", "mail"):
        env = rounds.make("rounds/GUI-v0", variant=variant)
        env.reset(seed=1)
        _, _, _, _, info = env.step("¯\\_(ツ)_/¯")
        assert info["invalid_action"]


@pytest.mark.parametrize(
    "text",
    [
        "two\nlines",
        "tab\there",
        "\u202eright-to-left override",
        "مرحبا بالعالم",
        "e\u0301\u0301\u0301 combining",
        "🙂🙃 emoji",
        "\u200b\u200b",
        "   ",
    ],
)
def test_any_typed_text_renders_in_the_screenshot(text: str) -> None:
    env = fresh(observation="both")
    open_form(env)
    name = env.backend.screen().by_key("field:name")
    assert name is not None
    observation, _, _, _, info = env.step(f"type({name.id}, {json.dumps(text)})")
    assert info["screenshot"].startswith(b"\x89PNG")
    assert "Screen: New contact" in observation
