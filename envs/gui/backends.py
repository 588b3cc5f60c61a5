"""What a GUI backend provides to :class:`~rounds.envs.gui.env.GUIEnv`, and the built-in one.

A backend owns the hidden state (the built-in phone, or a real browser page)
and exposes it as a laid-out :class:`~rounds.envs.gui.widgets.Screen`. The env
does everything else the same way for every backend: parsing the action
language, checking targets (unknown, hidden, disabled, not editable), the
accessibility text and the rewards.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rounds.envs.gui.apps import APP_NAMES, TEMPLATES, generate_device
from rounds.envs.gui.device import Device
from rounds.envs.gui.tasks import SPLIT_SIZES, Task, parse_task_id, task_id, task_seed
from rounds.envs.gui.widgets import SCREEN_HEIGHT, Screen, Widget, body_top


@dataclass
class Begun:
    """A started task: its goal text, the names of its sub-goals and reset info."""

    goal: str
    subgoal_names: list[str]
    answer: str | None = None
    info: dict[str, Any] = field(default_factory=dict)


class Backend(ABC):
    """The hidden state of a GUI episode, shown as a screen of widgets."""

    name: str = ""

    @abstractmethod
    def task_ids(self, split: str) -> Sequence[str]:
        """Task ids of a split, in a fixed order."""

    @abstractmethod
    def begin(self, task: str) -> Begun:
        """Start a task (raise ``ValueError`` for an unknown id)."""

    @abstractmethod
    def screen(self) -> Screen:
        """The current screen, laid out, with element ids."""

    def click(self, widget: Widget) -> str:
        """Click a checked, enabled, visible widget; returns what happened."""
        assert widget.on_click is not None
        return widget.on_click()

    def type(self, widget: Widget, text: str) -> str:
        """Replace an editable widget's text."""
        assert widget.on_type is not None
        return widget.on_type(text)

    @abstractmethod
    def scroll(self, direction: str) -> str:
        """Scroll the content up or down."""

    @abstractmethod
    def back(self) -> str:
        """Close the open modal, else go back one screen."""

    def ended(self) -> bool:
        """Whether the task ended by itself (a MiniWoB task does on its last action)."""
        return False

    def subgoals(self) -> list[bool]:
        """Which of the task's sub-goals hold now."""
        return []

    @abstractmethod
    def success(self, answer: str | None) -> bool:
        """The verifier: does the final state (and answer) meet the goal?"""

    @abstractmethod
    def screenshot(self) -> bytes:
        """The screen as PNG bytes."""

    def snapshot(self) -> Any:
        raise NotImplementedError(f"the {self.name} backend cannot snapshot its state")

    def restore(self, state: Any) -> None:
        raise NotImplementedError(f"the {self.name} backend cannot restore a state")

    def close(self) -> None:
        """Release what the backend holds (a browser)."""
        return None


class AppsBackend(Backend):
    """The built-in phone: six apps whose widget trees are built from their state.

    Args:
        apps: restrict tasks to these apps (default all six).
    """

    name = "apps"

    def __init__(self, apps: Sequence[str] | None = None) -> None:
        chosen = list(apps) if apps is not None else list(APP_NAMES)
        unknown = sorted(set(chosen) - set(APP_NAMES))
        if unknown or not chosen:
            raise ValueError(f"unknown apps {unknown}; choose from {', '.join(APP_NAMES)}")
        self.templates = [t for t in TEMPLATES.values() if t.app in chosen]
        self.device = generate_device(np.random.default_rng(0))
        self.task: Task | None = None

    def task_ids(self, split: str) -> Sequence[str]:
        return [
            task_id(t.name, split, i) for i in range(SPLIT_SIZES[split]) for t in self.templates
        ]

    def begin(self, task: str) -> Begun:
        template, split, index = parse_task_id(task, list(TEMPLATES))
        rng = np.random.default_rng(task_seed(template, split, index))
        self.device = generate_device(rng)
        self.task = TEMPLATES[template].make(self.device, rng)
        self.device.changed()
        return Begun(
            goal=self.task.goal,
            subgoal_names=[name for name, _ in self.task.subgoals],
            answer=self.task.answer,
            info={"template": template, "app": TEMPLATES[template].app},
        )

    def screen(self) -> Screen:
        return self.device.screen()

    def scroll(self, direction: str) -> str:
        screen = self.device.screen()
        page = SCREEN_HEIGHT - body_top(screen) - 80
        moved = self.device.scroll_by(page if direction == "down" else -page)
        if moved == 0:
            return f"The screen cannot scroll further {direction}."
        return f"Scrolled {direction}."

    def back(self) -> str:
        device = self.device
        if device.modal is not None:
            device.close_modal()
            return "Closed."
        if len(device.stack) == 1:
            return "This is the home screen; there is nothing to go back to."
        device.pop()
        return ""

    def subgoals(self) -> list[bool]:
        assert self.task is not None
        return [check(self.device) for _, check in self.task.subgoals]

    def success(self, answer: str | None) -> bool:
        assert self.task is not None
        return self.task.verify(self.device, answer)

    def screenshot(self) -> bytes:
        from rounds.envs.gui.render import render_png  # Pillow only when screenshots are asked for

        return render_png(self.device.screen(), dark=self.device.app("settings").dark_mode)

    def snapshot(self) -> Any:
        return (self.device.snapshot(), self.task)

    def restore(self, state: Any) -> None:
        device, task = state
        self.device = copy.deepcopy(device)
        self.task = task


def device_of(backend: Backend) -> Device:
    """The built-in device behind a backend (for the scripted policies)."""
    if not isinstance(backend, AppsBackend):
        raise TypeError(f"the {backend.name} backend has no built-in device")
    return backend.device
