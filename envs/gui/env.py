"""``rounds/GUI-v0``: the env class."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from rounds.actions import InvalidAction
from rounds.envs.gui.backends import AppsBackend, Backend
from rounds.envs.gui.commands import USAGE, GuiAction, parse_action, tool_specs
from rounds.envs.gui.expert import expert_policy, random_policy
from rounds.envs.gui.widgets import Screen, Widget, accessibility_text, body_top, flatten
from rounds.text_env import EpisodeEnd, ScriptedPolicy, StepResult, TextEnv

OBSERVATION_MODES = ("a11y", "screenshot", "both")
BACKENDS = ("apps", "miniwob")


class GUIEnv(TextEnv):
    """App screens: read an accessibility tree or a screenshot, then click, type, scroll, go back.

    ## Description
    The default backend is a simulated phone with six apps (Settings, Contacts,
    Calendar, Shop, Mail, Files) built from a small widget toolkit: buttons,
    text fields, lists, checkboxes, switches, radios, tabs, menus and dialogs,
    laid out on a 360x640 screen. Each task (49 parameterised templates, e.g.
    "Turn on dark mode and set the font size to 14", "Forward the email
    'Receipt #4821' to Ana") needs navigation across screens; its verifier
    checks the final app state, not the clicks. ``backend="miniwob"`` runs
    Farama's MiniWoB++ web tasks in a headless Chromium instead, with the same
    observation text and action language.

    ## Action Space
    Text (:class:`~rounds.TextSpace`): one action, ``click(id)``, ``click(x, y)``,
    ``type(id, "text")`` (replaces the field's text), ``scroll(up|down)``,
    ``back()`` (closes a dialog or menu, else goes back a screen), ``finish()`` or
    ``finish("answer")`` for a question, as plain text on the last line or as a
    JSON tool call (``env.unwrapped.tools``). Reasoning in ``<think>`` blocks is allowed.

    ## Observation Space
    Text. ``observation="a11y"`` (default): the result of the action and the
    accessibility tree, one element a line with its id, role, label, states
    (checked, selected, disabled, a text field's value) and bounding box
    ``@(x1,y1,x2,y2)``; elements scrolled out of view are counted, not listed.
    ``"screenshot"``: the result and the screen's title only, with the screen as
    PNG bytes in ``info["screenshot"]`` (act by coordinates). ``"both"``: the
    tree and the PNG. The reset observation starts with the task.

    ## Rewards
    The turn reward is the weighted sum of the reward components (default
    weights: outcome 1, subgoal 0.5, invalid_action 1).

    ## Reward Components
    | key | non-zero when | range |
    |---|---|---|
    | ``outcome`` | the final turn, if the verifier accepts the final state (and answer) | {0, 1} |
    | ``subgoal`` | a turn after which one of the task's sub-goals holds for the first time (checked by the env on its state, e.g. "display open", "dark mode on") | [0, 1], 1/n per sub-goal, sums to at most 1 |
    | ``invalid_action`` | the action was invalid (unparseable, unknown id, hidden or disabled element, off-screen point, typing into a non-text widget, over-long text) | {-invalid_action_penalty, 0} |

    ``info["potential"]`` is the fraction of sub-goals reached so far, for
    potential-based shaping (``rounds.shaping``).

    ## Starting State
    The phone's home screen lists the apps; the apps' data (contacts, mail,
    events, files, prices, settings) is generated from the task id, so one task
    id is one world.

    ## Episode End
    Terminated by ``finish()`` (or when a MiniWoB task ends by itself);
    truncated after ``max_turns`` (default 30), which scores no outcome.
    ``info["metrics"]``: ``success``, ``subgoal_fraction``, ``invalid_actions``.

    ## Arguments
    - ``backend``: ``"apps"`` (default) or ``"miniwob"`` (needs the ``[gui]`` extra
      and Debian's ``chromium`` and ``chromium-driver``), or a
      :class:`~rounds.envs.gui.backends.Backend` instance (e.g. a ``MiniWoBBackend``
      with its own browser pool).
    - ``observation``: ``"a11y"``, ``"screenshot"`` or ``"both"``.
    - ``apps``: restrict the built-in tasks to these apps.
    - ``miniwob_tasks``: MiniWoB task names (default a set of click, type and form tasks).
    - ``max_turns``, ``split``, ``reward_weights``, ``invalid_action_penalty``,
      ``max_action_chars``, ``render_mode``: see :class:`~rounds.TextEnv`.
    Built-in task ids are ``<template>-<split>-<index>`` (``settings.theme-train-3``),
    1000 per template in train, 50 in validation and in test.

    ## Version History
    - v0: first release.
    """

    reward_component_names = ("outcome", "subgoal", "invalid_action")
    outcome_components = ("outcome",)
    default_reward_weights: ClassVar[Mapping[str, float]] = {
        "outcome": 1.0,
        "subgoal": 0.5,
        "invalid_action": 1.0,
    }
    unrecorded_info_keys = ("screenshot",)
    #: Rebuilds a recorded episode's screens for ``rounds replay`` (episodes keep only hashes).
    screenshot_rebuilder = "rounds.envs.gui.screenshots:episode_screenshots"
    replay_metrics = ("success", "subgoal_fraction", "invalid_actions")
    replay_series = ("potential",)
    variants: ClassVar[Mapping[str, Mapping[str, Any]]] = {
        "screenshot": {"observation": "screenshot"},
        "both": {"observation": "both"},
        "miniwob": {"backend": "miniwob"},
        **{
            app: {"apps": [app]}
            for app in ("settings", "contacts", "calendar", "shop", "mail", "files")
        },
    }

    def __init__(
        self,
        *,
        backend: str | Backend = "apps",
        observation: str = "a11y",
        apps: Sequence[str] | None = None,
        miniwob_tasks: Sequence[str] | None = None,
        max_turns: int = 30,
        **kwargs: Any,
    ) -> None:
        super().__init__(max_turns=max_turns, **kwargs)
        if observation not in OBSERVATION_MODES:
            raise ValueError(
                f"unknown observation mode {observation!r}; choose one of {', '.join(OBSERVATION_MODES)}"
            )
        if not isinstance(backend, Backend) and backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        self.observation_mode = observation
        self.backend: Backend
        if isinstance(backend, Backend):
            self.backend = backend
        elif backend == "miniwob":
            from rounds.envs.gui.miniwob_backend import MiniWoBBackend

            self.backend = MiniWoBBackend(miniwob_tasks)
        else:
            self.backend = AppsBackend(apps)
        self.goal = ""
        self._subgoal_names: list[str] = []
        self._reached: list[bool] = []
        self._invalid_actions = 0
        self._answer: str | None = None
        self._finished = False

    # ------------------------------------------------------------------ the task

    @property
    def system_prompt(self) -> str:
        seeing = {
            "a11y": "You see the screen as an accessibility tree: one element a line, "
            '[id] role "label", its states and its box @(x1,y1,x2,y2) in pixels.',
            "screenshot": "You see a screenshot of the screen; act by clicking points, click(x, y).",
            "both": "You see a screenshot and the accessibility tree of the screen: one element "
            'a line, [id] role "label", its states and its box @(x1,y1,x2,y2) in pixels.',
        }[self.observation_mode]
        return (
            "You operate a graphical user interface to complete a task. "
            f"{seeing} Each turn, reply with exactly one action.\n{USAGE}\n"
            "type replaces the text of a field. Dialogs and menus must be answered or closed "
            "(back()) before the rest of the screen responds. Scroll to reach elements out "
            "of view. When the task is done, call finish(); when the task asks a question, "
            'answer it with finish("answer").'
        )

    @property
    def tools(self) -> list[dict[str, Any]]:
        return tool_specs()

    def task_ids(self, split: str | None = None) -> Sequence[str]:
        return self.backend.task_ids(split or self.split)

    def scripted_policies(self) -> dict[str, ScriptedPolicy]:
        policies: dict[str, ScriptedPolicy] = {"random": random_policy}
        if isinstance(self.backend, AppsBackend):
            policies["expert"] = expert_policy
        return policies

    # ------------------------------------------------------------------ hooks

    def _begin(self, task_id: str, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        begun = self.backend.begin(task_id)
        self.goal = begun.goal
        self._subgoal_names = begun.subgoal_names
        self._reached = [False] * len(begun.subgoal_names)
        self._invalid_actions = 0
        self._answer = None
        self._finished = False
        info: dict[str, Any] = {
            "goal": begun.goal,
            "subgoals": list(begun.subgoal_names),
            **begun.info,
        }
        if begun.answer is not None:
            info["answer"] = begun.answer
        return f"Task: {begun.goal}\n\n{self._screen_text(self.backend.screen())}", info

    def _act(self, text: str) -> StepResult:
        try:
            action = parse_action(text)
            message = self._apply(action)
            result = StepResult(self._observe(message))
        except InvalidAction as err:
            result = self.reject(str(err))
        if result.invalid:
            self._invalid_actions += 1
        now = self.backend.subgoals()
        if now:
            newly = [n and not r for n, r in zip(now, self._reached, strict=True)]
            self._reached = [n or r for n, r in zip(now, self._reached, strict=True)]
            result.components["subgoal"] = sum(newly) / len(newly)
            reached = [name for name, new in zip(self._subgoal_names, newly, strict=True) if new]
            if reached:
                result.info["subgoals_reached"] = reached
        result.terminated = self._finished or self.backend.ended()
        if self._answer is not None:
            result.info["final_answer"] = self._answer
        return result

    def _apply(self, action: GuiAction) -> str:
        """Carry out a parsed action; raise :class:`InvalidAction` for an impossible one."""
        backend = self.backend
        if action.verb == "finish":
            self._finished = True
            self._answer = action.text
            return (
                "You finished the task." if action.text is None else f"You answered: {action.text}"
            )
        if action.verb == "back":
            return backend.back()
        if action.verb == "scroll":
            assert action.direction is not None
            if backend.screen().modal() is not None:
                raise InvalidAction(
                    "A dialog or menu is open; answer it or close it with back() before scrolling."
                )
            return backend.scroll(action.direction)
        screen = backend.screen()
        if action.verb == "click" and action.element is None:
            assert action.x is not None and action.y is not None
            widget = self._at(screen, action.x, action.y)
        else:
            assert action.element is not None
            widget = self._target(screen, action.element)
        if action.verb == "type":
            assert action.text is not None
            if not widget.editable:
                fields = [f"[{w.id}]" for w in screen.interactive() if w.editable]
                where = (
                    f" Text fields here: {', '.join(fields)}."
                    if fields
                    else " There is no text field on this screen."
                )
                raise InvalidAction(
                    f"{_name(widget)} is not a text field; you cannot type into it.{where}"
                )
            if not widget.enabled:
                raise InvalidAction(f"{_name(widget)} is disabled; do what enables it first.")
            if len(action.text) > widget.max_chars:
                raise InvalidAction(
                    f"The text is {len(action.text):,} characters; {_name(widget)} takes at most "
                    f"{widget.max_chars}. Type a shorter text."
                )
            return backend.type(widget, action.text)
        if not widget.enabled:
            raise InvalidAction(f"{_name(widget)} is disabled; do what enables it first.")
        if widget.key == "back":
            return backend.back()
        if widget.role == "textbox" and widget.on_click is None:
            return f'{_name(widget)} is focused; type({widget.id}, "...") to fill it.'
        if not widget.clickable:
            clickable = [f"[{w.id}]" for w in screen.interactive() if w.clickable][:12]
            raise InvalidAction(
                f"{_name(widget)} does nothing when clicked. Clickable elements: {', '.join(clickable)}."
            )
        return backend.click(widget)

    def _target(self, screen: Screen, element_id: int) -> Widget:
        widget = screen.by_id(element_id)
        if widget is None:
            raise InvalidAction(
                f"There is no element [{element_id}] on this screen; ids go from 1 to "
                f"{len(screen.elements)}. Use an id from the latest screen."
            )
        modal = screen.modal()
        if modal is not None and widget not in list(flatten(modal)):
            kind = "dialog" if screen.dialog is not None else "menu"
            raise InvalidAction(
                f"{_name(widget)} is behind the open {kind}; use the {kind}'s elements or close it with back()."
            )
        if not widget.visible:
            direction = "up" if widget.box[1] < body_top(screen) else "down"
            raise InvalidAction(
                f"{_name(widget)} is scrolled out of view; scroll({direction}) to bring it on screen first."
            )
        return widget

    def _at(self, screen: Screen, x: int, y: int) -> Widget:
        if not (0 <= x < screen.width and 0 <= y < screen.height):
            raise InvalidAction(
                f"({x}, {y}) is outside the {screen.width}x{screen.height} screen; "
                f"x goes from 0 to {screen.width - 1}, y from 0 to {screen.height - 1}."
            )
        widget = screen.at(x, y)
        if widget is not None:
            return widget
        if screen.modal() is not None:
            raise InvalidAction(
                f"Nothing of the open dialog or menu is at ({x}, {y}); click one of its elements or back()."
            )
        nearest = min(
            (w for w in screen.interactive() if w.clickable),
            key=lambda w: _distance(w, x, y),
            default=None,
        )
        hint = (
            f" The nearest clickable element is {_name(nearest)} @{nearest.box}." if nearest else ""
        )
        raise InvalidAction(f"There is nothing clickable at ({x}, {y}).{hint}")

    def _observe(self, message: str) -> str:
        text = self._screen_text(self.backend.screen())
        return f"{message}\n\n{text}" if message else text

    def _screen_text(self, screen: Screen) -> str:
        if self.observation_mode == "screenshot":
            state = ""
            if screen.dialog is not None:
                state = f' A dialog "{screen.dialog.title}" is open.'
            elif screen.menu is not None:
                state = " A menu is open."
            return f"Screen: {screen.title} ({screen.width}x{screen.height} px, shown in the screenshot).{state}"
        return accessibility_text(screen)

    def _finish(self, terminated: bool) -> EpisodeEnd:
        success = (self._finished or self.backend.ended()) and self.backend.success(self._answer)
        fraction = sum(self._reached) / len(self._reached) if self._reached else 0.0
        return EpisodeEnd(
            components={"outcome": 1.0 if success else 0.0},
            metrics={
                "success": float(success),
                "subgoal_fraction": fraction,
                "invalid_actions": float(self._invalid_actions),
            },
        )

    def reject(self, message: str) -> StepResult:
        """An invalid action: TextEnv's message and penalty, reported as ``invalid_action``."""
        result = super().reject(message)
        result.components = {"invalid_action": result.components.pop("format", 0.0)}
        return result

    def _invalid_hint(self) -> str:
        if not self._started:
            return USAGE
        if self.observation_mode == "screenshot":
            return f"{USAGE}\n\n{self._screen_text(self.backend.screen())}"
        return f"\n{self._screen_text(self.backend.screen())}"

    def _turn_info(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "potential": sum(self._reached) / len(self._reached) if self._reached else 0.0
        }
        if self.observation_mode != "a11y":
            png = self.backend.screenshot()
            info["screenshot"] = png
            # Recorded (the bytes are not): the replay can tell a turn had a screenshot and
            # check one rebuilt by `rounds.envs.gui.screenshots.episode_screenshots`.
            info["screenshot_sha256"] = hashlib.sha256(png).hexdigest()
        return info

    # ----------------------------------------------------------- state copies

    def snapshot(self) -> dict[str, Any]:
        """An exact copy of the episode's state (built-in backend), for prover rollouts."""
        return {
            "backend": self.backend.snapshot(),
            "env": (
                self.task_id,
                self.turn,
                self._started,
                self._done,
                self._last_observation,
                self.goal,
                list(self._subgoal_names),
                list(self._reached),
                self._invalid_actions,
                self._answer,
                self._finished,
            ),
        }

    def restore(self, snapshot: dict[str, Any]) -> None:
        """Return to a :meth:`snapshot`; the episode then replays byte for byte."""
        self.backend.restore(snapshot["backend"])
        (
            self.task_id,
            self.turn,
            self._started,
            self._done,
            self._last_observation,
            self.goal,
            names,
            reached,
            self._invalid_actions,
            self._answer,
            self._finished,
        ) = snapshot["env"]
        self._subgoal_names, self._reached = list(names), list(reached)

    def close(self) -> None:
        self.backend.close()
        super().close()


def _name(widget: Widget) -> str:
    label = f' "{widget.label}"' if widget.label else ""
    return f"[{widget.id}] {widget.role}{label}"


def _distance(widget: Widget, x: int, y: int) -> float:
    x1, y1, x2, y2 = widget.box
    dx = max(x1 - x, 0, x - x2)
    dy = max(y1 - y, 0, y - y2)
    return float(dx * dx + dy * dy)
