"""Turning an agent's raw text into something an env can parse, without ever raising.

Every env receives the agent's raw text for the turn. The checks here are the
ones all envs share: the action must be text, not too long, not empty once
control characters are removed; reasoning blocks (``<think>``, ``<plan>``,
``<explore>``, ``<reflect>``) are split from the command; an ``<action>`` block,
when present, is the command. JSON tool calls are found and decoded here too,
by one parser that no JSON shape or size can make raise (Python's ``json``
raises ``ValueError`` on an integer of more than 4,300 digits and
``RecursionError`` on deep nesting): every env that reads tool calls uses
:func:`parse_tool_calls`. Messages quote the agent's text with
:func:`excerpt`, never whole.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterator
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


def excerpt(text: str, limit: int = 60) -> str:
    """``text`` quoted for a message, on one line and at most about ``limit`` characters.

    An agent's text can be 16k characters of noise; a message that echoes it whole
    buries the hint and bloats the context, so a longer text is clipped with its length.
    """
    line = " ".join(text.split())
    if len(line) <= limit:
        return repr(line)
    return f"{line[: max(limit - 3, 1)]!r}... ({len(text):,} characters)"


# ----------------------------------------------------------------- JSON tool calls

#: Deepest bracket nesting a JSON object in an action may have; deeper ones are not decoded.
MAX_JSON_DEPTH = 32
#: Longest integer literal decoded; longer ones reject the object (Python refuses > 4,300 digits).
MAX_JSON_INT_DIGITS = 100
#: At most this many candidate objects are decoded per text (bounds the work on ``{}{}{}...``).
MAX_JSON_CANDIDATES = 64
#: Keys a tool call's arguments may sit under, in order of preference.
ARGUMENT_KEYS = ("arguments", "parameters", "args", "input")


class _IntegerTooLong(ValueError):
    def __init__(self, digits: int) -> None:
        super().__init__(
            f"it holds an integer of {digits:,} digits (at most {MAX_JSON_INT_DIGITS} are read)"
        )


def _bounded_int(literal: str) -> int:
    digits = len(literal.lstrip("-"))
    if digits > MAX_JSON_INT_DIGITS:
        raise _IntegerTooLong(digits)
    return int(literal)


_DECODER = json.JSONDecoder(parse_int=_bounded_int)
_JSON_SYNTAX = re.compile(r'[{}\[\]"\\\n]')


def _object_spans(text: str) -> Iterator[tuple[int, int, int]]:
    """Every balanced ``{...}`` span of ``text`` as ``(start, end, depth)``, in closing order.

    One linear scan with a bracket stack; brackets inside JSON strings are skipped
    (a JSON string cannot hold a raw newline, so a newline ends a runaway string).
    ``depth`` is the span's deepest nesting, counting itself as 1.
    """
    stack: list[tuple[int, str]] = []
    inner: list[int] = []  # deepest nesting below each open bracket
    in_string = False
    skip = -1
    for match in _JSON_SYNTAX.finditer(text):
        i, ch = match.start(), match.group()
        if i == skip:
            continue
        if in_string:
            if ch == "\\":
                skip = i + 1
            elif ch in '"\n':
                in_string = False
            continue
        if ch == '"':
            in_string = bool(stack)
        elif ch in "{[":
            stack.append((i, ch))
            inner.append(0)
        elif ch in "}]" and stack and stack[-1][1] == ("{" if ch == "}" else "["):
            start, opening = stack.pop()
            depth = inner.pop() + 1
            if inner:
                inner[-1] = max(inner[-1], depth)
            if opening == "{":
                yield start, i + 1, depth


def decode_json(text: str, what: str = "The JSON") -> Any:
    """Decode one JSON value; every failure is an :class:`InvalidAction` with the reason.

    ``what`` names the text in the message (``"The arguments of the diagnose call"``).

    Raises:
        InvalidAction: the text is not JSON, is nested deeper than :data:`MAX_JSON_DEPTH`,
            or holds an integer longer than :data:`MAX_JSON_INT_DIGITS` digits.
    """
    if _depth(text) > MAX_JSON_DEPTH:
        raise InvalidAction(f"{what} is nested deeper than {MAX_JSON_DEPTH} levels.")
    try:
        return _DECODER.decode(text)
    except json.JSONDecodeError as err:
        raise InvalidAction(
            f"{what} is not valid JSON ({err.msg} at character {err.pos})."
        ) from err
    except (ValueError, RecursionError) as err:
        raise InvalidAction(f"{what} cannot be read: {err}.") from err


def _depth(text: str) -> int:
    """The deepest bracket nesting of ``text`` outside JSON strings."""
    stack_depth = 0
    deepest = 0
    in_string = False
    skip = -1
    for match in _JSON_SYNTAX.finditer(text):
        i, ch = match.start(), match.group()
        if i == skip:
            continue
        if in_string:
            if ch == "\\":
                skip = i + 1
            elif ch in '"\n':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "{[":
            stack_depth += 1
            deepest = max(deepest, stack_depth)
        elif ch in "}]":
            stack_depth = max(stack_depth - 1, 0)
    return deepest


@dataclass(frozen=True)
class JsonScan:
    """The JSON objects found in a text, and why other candidates were not decoded."""

    objects: list[dict[str, Any]]
    problems: list[str]


def find_json_objects(text: str, limit: int = 8) -> JsonScan:
    """The outermost JSON objects embedded in free text, in order; never raises.

    A reply may wrap its tool call in prose, Markdown fences or ``<tool_call>`` tags.
    Candidates are the balanced ``{...}`` spans; a span that does not decode (prose in
    braces) is dropped and the objects inside it are tried instead. Spans nested deeper
    than :data:`MAX_JSON_DEPTH` or holding overlong integers are reported in ``problems``.
    """
    spans = sorted(_object_spans(text))
    objects: list[dict[str, Any]] = []
    problems: list[str] = []
    covered_until = -1
    attempts = 0
    for start, end, depth in spans:
        if start < covered_until:
            continue
        if len(objects) >= limit or attempts >= MAX_JSON_CANDIDATES:
            break
        if depth > MAX_JSON_DEPTH:
            if not problems or "nested" not in problems[-1]:
                problems.append(f"a JSON object is nested deeper than {MAX_JSON_DEPTH} levels")
            continue
        attempts += 1
        try:
            value = _DECODER.decode(text[start:end])
        except _IntegerTooLong as err:
            problems.append(f"a JSON object cannot be read: {err}")
            covered_until = end
            continue
        except (ValueError, RecursionError):
            continue
        if isinstance(value, dict):
            objects.append(value)
            covered_until = end
    return JsonScan(objects, problems)


@dataclass(frozen=True)
class ToolCall:
    """One decoded tool call: the tool's name and its arguments object."""

    name: str
    arguments: dict[str, Any]


def _as_tool_call(obj: dict[str, Any]) -> ToolCall | None:
    function = obj.get("function")
    call: dict[str, Any] = function if isinstance(function, dict) else obj
    name = call.get("name", call.get("tool"))
    if not isinstance(name, str) or not name.strip():
        return None
    arguments: Any = {}
    for key in ARGUMENT_KEYS:
        if key in call:
            arguments = call[key]
            break
    if isinstance(arguments, str):
        what = f"The arguments of the {excerpt(name, 40)} call"
        arguments = decode_json(arguments, what) if arguments.strip() else {}
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, dict):
        raise InvalidAction(
            f"The arguments of the {excerpt(name, 40)} call must be a JSON object, "
            f"not {type(arguments).__name__}."
        )
    return ToolCall(name.strip(), arguments)


def parse_tool_calls(text: str, limit: int = 8) -> list[ToolCall]:
    """The JSON tool calls in a reply (OpenAI's ``{"function": ...}`` form, Qwen's
    ``<tool_call>`` tags, bare ``{"name": ..., "arguments": ...}``), in order.

    Never raises anything but :class:`InvalidAction`, whatever the text: a call whose
    arguments are malformed, or a reply that is JSON through and through but cannot be
    read (too deep, an overlong integer), is rejected with the reason. Objects that are
    not tool calls are ignored, and a reply without any gives ``[]``.
    """
    scan = find_json_objects(text, limit)
    calls = [call for call in map(_as_tool_call, scan.objects) if call is not None]
    if not calls and scan.problems:
        stripped = text.strip()
        if stripped.startswith(("{", "[", "<tool_call>", "```")):
            raise InvalidAction(
                f"The tool call could not be read: {scan.problems[0]}. Send one flat JSON "
                'object such as {"name": "<tool>", "arguments": {...}}.'
            )
    return calls
