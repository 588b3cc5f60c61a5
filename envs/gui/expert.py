"""Scripted baselines: an ``expert`` that follows the task's plan and a ``random`` floor.

Both act through the same action language as an agent (``click(7)``,
``type(3, "Ana")``), reading ids off the current screen. The expert asks the
task what is left to do from the true state (:attr:`Task.plan`), walks the
apps' navigation graph (:meth:`App.parent`) to the screen of the next step,
scrolls the widget into view and acts on it; when nothing is left it finishes,
with the answer for a question.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np

from rounds.envs.gui.backends import AppsBackend
from rounds.envs.gui.device import HOME, Device, Route
from rounds.envs.gui.tasks import Step
from rounds.envs.gui.widgets import (
    Screen,
    Widget,
    body_top,
    flatten,
)

if TYPE_CHECKING:
    from rounds.text_env import TextEnv

RANDOM_WORDS = ("Ana", "hello", "14", "Lisbon", "09:30", "notes.txt", "x")


def _apps_backend(env: TextEnv) -> AppsBackend:
    backend = getattr(env, "backend", None)
    if not isinstance(backend, AppsBackend):
        raise TypeError("the expert needs the built-in apps backend")
    return backend


def expert_policy(env: TextEnv, rng: np.random.Generator) -> str:
    """The next action of a scripted expert that knows the task and the true state."""
    backend = _apps_backend(env)
    device, task = backend.device, backend.task
    assert task is not None
    steps = task.plan(device)
    if not steps:
        return "finish()" if task.answer is None else f"finish({json.dumps(task.answer)})"
    return act_on(device, steps[0])


def act_on(device: Device, step: Step) -> str:
    """The action that makes progress on ``step`` from the current screen."""
    screen = device.screen()
    if device.route == step.route:
        if not step.key:
            return "back()"  # already here; the plan moves on once the screen is shown
        widget = screen.by_key(step.key)
        modal = screen.modal()
        if widget is not None and modal is not None and widget not in flatten(modal):
            return "back()"
        if widget is not None:
            return _use(screen, widget, step.text)
    return _navigate(device, screen, step.route)


def _use(screen: Screen, widget: Widget, text: str | None) -> str:
    if not widget.visible and screen.modal() is None:
        return "scroll(up)" if widget.box[1] < body_top(screen) else "scroll(down)"
    if text is not None:
        return f"type({widget.id}, {json.dumps(text, ensure_ascii=False)})"
    return f"click({widget.id})"


def path_to(device: Device, target: Route) -> list[tuple[Route, str]]:
    """The hops from home to ``target``: each route with the key clicked to enter it."""
    hops: list[tuple[Route, str]] = []
    route = target
    while route != HOME:
        parent, key = device.apps[route[0]].parent(route)
        hops.append((route, key))
        route = parent
    return hops[::-1]


def _navigate(device: Device, screen: Screen, target: Route) -> str:
    if device.modal is not None:
        return "back()"
    hops = path_to(device, target)
    current = device.route
    for index in range(len(hops) - 1, -1, -1):
        before = HOME if index == 0 else hops[index - 1][0]
        if before != current:
            continue
        widget = screen.by_key(hops[index][1])
        if widget is None:
            # The way on is gone (e.g. the file was moved away): the step cannot be reached,
            # and going back and forth would never end. Give up.
            return "finish()"
        return _use(screen, widget, None)
    for route, key in reversed(hops):
        widget = screen.by_key(key)
        if key.startswith("tab:") and widget is not None and route != current:
            return _use(screen, widget, None)
    return "back()"


def random_policy(env: TextEnv, rng: np.random.Generator) -> str:
    """A uniformly random action over what the screen offers: the performance floor."""
    screen: Screen = env.backend.screen()  # type: ignore[attr-defined]
    targets = [w for w in screen.interactive() if w.clickable]
    fields = [w for w in targets if w.editable]
    roll = rng.random()
    if roll < 0.03:
        return "finish()"
    if roll < 0.10:
        return "back()"
    if roll < 0.20:
        return f"scroll({'down' if rng.random() < 0.5 else 'up'})"
    if roll < 0.25:
        return f"click({int(rng.integers(screen.width))}, {int(rng.integers(screen.height))})"
    if fields and roll < 0.40:
        widget = fields[int(rng.integers(len(fields)))]
        word = RANDOM_WORDS[int(rng.integers(len(RANDOM_WORDS)))]
        return f'type({widget.id}, "{word}")'
    if targets:
        return f"click({targets[int(rng.integers(len(targets)))].id})"
    return "back()"
