"""Turning an agent's raw text into something an env can parse, without ever raising.

Every env receives the agent's raw text for the turn. The checks here are the
ones all envs share: the action must be text, not too long, not empty once
control characters are removed; reasoning blocks (``<think>``, ``<plan>``,
``<explore>``, ``<reflect>``) are split from the command; an ``<action>`` block,
when present, is the command.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

#: Tags whose content is the agent's reasoning, not its command.
REASONING_TAGS = ("think", "thinking", "plan", "explore", "reflect")

_TAG_BLOCK = re.compile(
    r"<(?P<tag>" + "|".join(REASONING_TAGS) + r")\s*>(?P<body>.*?)</(?P=tag)\s*>",
    re.IGNORECASE | re.DOTALL,
)
_UNCLOSED_TAG = re.compile(r"<(?P<tag>" + "|".join(REASONING_TAGS) + r")\s*>", re.IGNORECASE)
_ACTION_BLOCK = re.compile(r"<action\s*>(?P<body>.*?)(?:</action\s*>|$)", re.IGNORECASE | re.DOTALL)


class InvalidAction(Exception):
    """Raised by an env's command handling to reject an action; the message is shown to the agent.

    The message should say what was wrong and what to do instead.
    """


def clean_text(action: Any, max_chars: int) -> str:
    """Validate and normalise an action into plain text.

    Control and format characters (other than newline and tab) and lone
    surrogates are removed; leading and trailing whitespace is stripped.

    Raises:
        InvalidAction: the action is not text, is longer than ``max_chars``, or is empty.
    """
    if isinstance(action, bytes | bytearray):
        action = bytes(action).decode("utf-8", "replace")
    if not isinstance(action, str):
        raise InvalidAction(
            f"The action must be text (a str), not {type(action).__name__}. Reply with a command."
        )
    if len(action) > max_chars:
        raise InvalidAction(
            f"The action is {len(action):,} characters long; the limit is {max_chars:,}. "
            "Reply with one short command."
        )
    text = "".join(
        ch if ch in "\n\t" or unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Co") else " "
        for ch in action
    ).strip()
    if not text:
        raise InvalidAction("The action is empty. Reply with one command.")
    return text


@dataclass
class ParsedText:
    """An action split into its reasoning blocks and the command text."""

    command: str
    tags: dict[str, str] = field(default_factory=dict)
    """First body of each reasoning tag present, keyed by lower-case tag name."""


def split_reasoning(text: str) -> ParsedText:
    """Split reasoning blocks from the command.

    ``<tag>...</tag>`` blocks of :data:`REASONING_TAGS` are removed and kept in
    ``tags``; if an ``<action>`` block is present its content is the command.
    An unclosed reasoning tag swallows the rest of the text (the model was cut off
    while thinking), which leaves an empty command.
    """
    tags: dict[str, str] = {}

    def keep(match: re.Match[str]) -> str:
        tags.setdefault(match.group("tag").lower(), match.group("body").strip())
        return "\n"

    rest = _TAG_BLOCK.sub(keep, text)
    unclosed = _UNCLOSED_TAG.search(rest)
    if unclosed is not None:
        tags.setdefault(unclosed.group("tag").lower(), rest[unclosed.end() :].strip())
        rest = rest[: unclosed.start()]
    action = _ACTION_BLOCK.search(rest)
    command = action.group("body") if action is not None else rest
    return ParsedText(command=command.strip(), tags=tags)


_PREFIX = re.compile(r"^(?:>+|action\s*:|command\s*:|next action\s*:)\s*", re.IGNORECASE)


def command_line(text: str) -> str:
    """The command in a free-text reply: the last non-empty line, without prompts and quoting.

    Models often explain before acting ("I should open the fridge.\\nopen fridge 1"),
    so the last line is taken; ``> ``/``Action:`` prefixes, surrounding backticks or
    quotes and a final full stop are removed.
    """
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith("```")]
    if not lines:
        return ""
    line = _PREFIX.sub("", lines[-1]).strip()
    line = line.strip("`\"'*").strip()
    return line.rstrip(".!").strip()
