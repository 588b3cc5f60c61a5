"""Reading the clinic agent's reply: order an exam, or commit to a diagnosis.

Three formats are accepted, checked in this order:

1. a JSON tool call (read by :func:`rounds.actions.parse_tool_calls`, which no
   JSON shape or size makes raise), ``{"name": "order_exam", "arguments": {"exam": "CBC"}}`` or
   ``{"name": "diagnose", "arguments": {"diagnosis": "..."}}`` (OpenAI's
   ``{"function": {...}}`` wrapping and Qwen's ``<tool_call>`` tags too);
2. DiagAgent's free text: "... the following investigation(s) should be
   performed: X" or "The available information is sufficient to make a
   diagnosis. Diagnosis: Y" (a "Current diagnosis:" line is not final);
3. the simple form ``exam: X`` or ``diagnosis: Y``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from rounds.actions import InvalidAction, ToolCall, excerpt, parse_tool_calls, split_reasoning

FORMAT_HELP = (
    "Reply with one of: 'exam: <one examination>' | 'diagnosis: <one diagnosis>' | "
    "the DiagAgent format ('...the following investigation(s) should be performed: <exam>' or "
    '\'Diagnosis: <diagnosis>\') | a tool call {"name": "order_exam", "arguments": {"exam": "..."}} '
    'or {"name": "diagnose", "arguments": {"diagnosis": "..."}}.'
)

EXAM_TOOLS = ("order_exam", "recommend_exam", "exam", "order_test", "request_exam")
DIAGNOSIS_TOOLS = ("diagnose", "final_diagnosis", "diagnosis", "give_diagnosis")


@dataclass(frozen=True)
class ClinicAction:
    """What the agent asked for: an exam by name, or a final diagnosis."""

    kind: Literal["exam", "diagnose"]
    name: str
    note: str = ""


_INVESTIGATION = re.compile(
    r"investigations?(?:\s*\(s\))?\s+should\s+be\s+(?:performed|ordered|done)\s*:\s*(?P<name>[^\n]*)",
    re.IGNORECASE,
)
_FINAL = re.compile(
    r"^[\s*#>-]*(?:final\s+)?diagnosis\s*:\s*(?P<name>[^\n]*)$", re.IGNORECASE | re.MULTILINE
)
_SIMPLE_EXAM = re.compile(
    r"^[\s*#>-]*(?:exam|examination|test|order|investigation|recommended exam|next exam)\s*:\s*(?P<name>[^\n]*)$",
    re.IGNORECASE | re.MULTILINE,
)
_DX = re.compile(r"^[\s*#>-]*(?:dx)\s*:\s*(?P<name>[^\n]*)$", re.IGNORECASE | re.MULTILINE)


def _clean(name: str) -> str:
    return name.strip().strip("*`\"'[]").strip().rstrip(".").strip()


#: Longest exam name read; longer text is not an exam's name. (A diagnosis has no limit of
#: its own: the examiner reads a long one, and scores a list of diagnoses 0.)
MAX_EXAM_NAME_CHARS = 300


def _checked_name(kind: Literal["exam", "diagnosis"], raw: str) -> str:
    name = _clean(raw)
    if not name:
        raise InvalidAction(
            f"The {'exam name' if kind == 'exam' else kind} is empty. {FORMAT_HELP}"
        )
    if kind == "exam" and len(name) > MAX_EXAM_NAME_CHARS:
        raise InvalidAction(
            f"The {kind} {excerpt(name)} is longer than {MAX_EXAM_NAME_CHARS} characters; "
            f"name one {kind} in a few words. {FORMAT_HELP}"
        )
    return name


def _tool_action(call: ToolCall) -> ClinicAction:
    tool = call.name.lower()
    if tool in EXAM_TOOLS:
        kind: Literal["exam", "diagnose"] = "exam"
        keys: tuple[str, ...] = ("exam", "name", "test", "examination", "exam_name")
    elif tool in DIAGNOSIS_TOOLS:
        kind = "diagnose"
        keys = ("diagnosis", "name", "final_diagnosis")
    else:
        raise InvalidAction(
            f"Unknown tool {excerpt(call.name, 40)}. The tools are order_exam and diagnose. "
            f"{FORMAT_HELP}"
        )
    value = next((call.arguments[k] for k in keys if k in call.arguments), None)
    note = ""
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        if len(value) > 1:
            note = (
                f"You asked for {len(value)} exams at once; only the first, {excerpt(value[0])}, "
                "was ordered. Order one exam per turn."
            )
        value = value[0]
    if not isinstance(value, str) or not value.strip():
        shown = excerpt(value) if isinstance(value, str) else type(value).__name__
        raise InvalidAction(
            f"{tool} needs a non-empty string argument {keys[0]!r}, got {shown}. {FORMAT_HELP}"
        )
    return ClinicAction(kind, _checked_name("exam" if kind == "exam" else "diagnosis", value), note)


def parse_action(text: str) -> ClinicAction:
    """Parse one reply; raise :class:`InvalidAction` (with the accepted formats) if it fits none."""
    body = split_reasoning(text).command
    if not body:
        raise InvalidAction(f"The reply has no action outside the reasoning. {FORMAT_HELP}")
    calls = parse_tool_calls(body)
    if calls:
        return _tool_action(calls[0])
    investigation = _INVESTIGATION.search(body)
    exam_line = investigation or _SIMPLE_EXAM.search(body)
    final = None
    for match in _FINAL.finditer(body):
        line_start = body.rfind("\n", 0, match.start()) + 1
        if not re.match(
            r"[\s*#>-]*current\s+diagnosis", body[line_start : match.end()], re.IGNORECASE
        ):
            final = match
            break
    final = final or _DX.search(body)
    if exam_line is not None:
        name = _checked_name("exam", exam_line.group("name"))
        note = ""
        if final is not None and _clean(final.group("name")):
            note = "You gave an exam and a final diagnosis; the exam was ordered. Give the diagnosis on its own when you are ready."
        return ClinicAction("exam", name, note)
    if final is not None:
        return ClinicAction("diagnose", _checked_name("diagnosis", final.group("name")))
    raise InvalidAction(
        f"I could not find an exam or a diagnosis in {excerpt(body)}. {FORMAT_HELP}"
    )
