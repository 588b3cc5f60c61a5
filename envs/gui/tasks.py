"""Task templates over the built-in apps: goals, sub-goals, verifiers and expert plans.

A :class:`Template` draws one task from a freshly generated device: it picks its
parameters from the device's own data (a contact that exists, an email that is
in the inbox), sets any precondition (dark mode off before "turn dark mode
on"), and returns a :class:`Task`. The verifier reads only the final device
state; sub-goals are named checks of the same state; the plan is what the
scripted expert still has to do from the current state.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from rounds.envs.gui.device import Device, Route

#: A check of the device state.
Check = Callable[[Device], bool]

SPLIT_SIZES = {"train": 1000, "validation": 50, "test": 50}


@dataclass(frozen=True)
class Step:
    """One thing the expert still has to do: act on widget ``key`` of ``route``.

    An empty ``key`` means "be on this route" (to read something); ``text`` set
    means type it into the field, else click.
    """

    route: Route
    key: str = ""
    text: str | None = None


@dataclass
class Task:
    """One drawn task."""

    goal: str
    subgoals: list[tuple[str, Check]]
    verify: Callable[[Device, str | None], bool]
    """``verify(device, answer)``: does the final state (and answer, for questions) meet the goal?"""
    plan: Callable[[Device], list[Step]]
    answer: str | None = None
    """The expected answer of a question task (``finish("...")``), else None."""
    params: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Template:
    """A parameterised task over one app."""

    name: str
    app: str
    make: Callable[[Device, np.random.Generator], Task]


def opened(app: str) -> Check:
    """Sub-goal: the app has been opened."""
    return lambda device: any(route[0] == app for route in device.visited)


def visited(route: Route) -> Check:
    """Sub-goal: the screen has been shown."""
    return lambda device: route in device.visited


def normalise_answer(text: str | None) -> str:
    """An answer compared loosely: case, spaces, quotes, ``$`` and a final full stop do not matter."""
    if text is None:
        return ""
    text = text.strip(" \t\n\"'`.").casefold()
    return re.sub(r"[\s$]+", "", text)


def digits(text: str) -> str:
    return re.sub(r"\D", "", text)


def task_id(template: str, split: str, index: int) -> str:
    return f"{template}-{split}-{index}"


def parse_task_id(text: str, templates: Sequence[str]) -> tuple[str, str, int]:
    """Split ``<template>-<split>-<index>``; raise ``ValueError`` naming the valid forms."""
    match = re.fullmatch(r"(?P<t>[a-z_.]+)-(?P<s>train|validation|test)-(?P<i>\d+)", text)
    if match is None or match.group("t") not in templates:
        raise ValueError(
            f"unknown GUI task id {text!r}; ids look like 'settings.theme-train-0' "
            f"(templates: {', '.join(templates)})"
        )
    index = int(match.group("i"))
    if index >= SPLIT_SIZES[match.group("s")]:
        raise ValueError(
            f"task index {index} is out of range for split {match.group('s')!r} "
            f"(0 to {SPLIT_SIZES[match.group('s')] - 1})"
        )
    return match.group("t"), match.group("s"), index


def task_seed(template: str, split: str, index: int) -> int:
    """A stable seed per task id (the same in every process and Python version)."""
    return zlib.crc32(f"{template}/{split}/{index}".encode())


def pick(rng: np.random.Generator, items: Sequence[str], count: int = 1) -> list[str]:
    """``count`` distinct items, in a reproducible order."""
    chosen = rng.choice(len(items), size=count, replace=False)
    return [items[int(i)] for i in chosen]


__all__ = [
    "Check",
    "Step",
    "Task",
    "Template",
    "digits",
    "normalise_answer",
    "opened",
    "parse_task_id",
    "pick",
    "task_id",
    "task_seed",
    "visited",
]
