"""Parsing ALFWorld's command grammar from free text.

The grammar is ALFWorld's (``go to X``, ``take X from Y``, ``put X in/on Y``,
``open X``, ``close X``, ``clean/heat/cool X with Y``, ``use X``, ``examine X``,
``look``, ``inventory``), read leniently: case, articles, punctuation, a
missing space before a number (``apple1``) and common synonyms (``pick up``,
``move X to Y``, ``turn on``) are accepted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rounds.actions import InvalidAction

GRAMMAR = (
    "Commands: go to <receptacle> | open <receptacle> | close <receptacle> | "
    "take <object> from <receptacle> | put <object> in/on <receptacle> | "
    "clean <object> with <receptacle> | heat <object> with <receptacle> | "
    "cool <object> with <receptacle> | use <lamp> | examine <object or receptacle> | "
    "look | inventory"
)


@dataclass(frozen=True)
class Command:
    """A parsed command: a verb and up to two names."""

    verb: str
    target: str | None = None
    place: str | None = None


_ARTICLES = re.compile(r"\b(?:the|a|an|some)\b")
_SPLIT_NUMBER = re.compile(r"([a-z])(\d)")
_NOT_NAME = re.compile(r"[^a-z0-9/ ]+")

_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    (
        "put",
        re.compile(
            r"^(?:put|place|move|drop) (?P<t>.+?) (?:in/on|in|on|into|onto|inside|to) (?P<p>.+)$"
        ),
    ),
    ("go", re.compile(r"^(?:go to|goto|go|walk to|move to|navigate to|head to) (?P<t>.+)$")),
    (
        "take",
        re.compile(
            r"^(?:take|pick up|pick|get|grab) (?P<t>.+?)(?: (?:from|off|out of) (?P<p>.+))?$"
        ),
    ),
    ("open", re.compile(r"^open (?P<t>.+)$")),
    ("close", re.compile(r"^(?:close|shut) (?P<t>.+)$")),
    ("clean", re.compile(r"^(?:clean|wash|rinse) (?P<t>.+?)(?: (?:with|using|in|at) (?P<p>.+))?$")),
    (
        "heat",
        re.compile(r"^(?:heat|warm|microwave) (?P<t>.+?)(?: (?:with|using|in|at) (?P<p>.+))?$"),
    ),
    ("cool", re.compile(r"^(?:cool|chill) (?P<t>.+?)(?: (?:with|using|in|at) (?P<p>.+))?$")),
    ("use", re.compile(r"^(?:use|turn on|switch on|toggle|turn off|switch off) (?P<t>.+)$")),
    ("examine", re.compile(r"^(?:examine|look at|inspect|check|x) (?P<t>.+)$")),
    ("look", re.compile(r"^(?:look|look around|l)$")),
    ("inventory", re.compile(r"^(?:inventory|inv|i|check inventory)$")),
    ("help", re.compile(r"^(?:help|\?)$")),
]


def normalise(text: str) -> str:
    """Lower-case, drop articles and punctuation, and split ``apple1`` into ``apple 1``."""
    text = _NOT_NAME.sub(" ", text.lower())
    text = _SPLIT_NUMBER.sub(r"\1 \2", text)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def parse_command(text: str) -> Command:
    """Parse one command line; raise :class:`InvalidAction` naming the grammar if it fits none."""
    line = normalise(text)
    if not line:
        raise InvalidAction(f"I could not find a command in {text[:80]!r}. {GRAMMAR}.")
    for verb, pattern in _PATTERNS:
        match = pattern.match(line)
        if match is not None:
            groups = match.groupdict()
            return Command(verb, groups.get("t"), groups.get("p"))
    shown = text if len(text) <= 80 else text[:77] + "..."
    raise InvalidAction(f"I don't understand {shown!r}. {GRAMMAR}.")
