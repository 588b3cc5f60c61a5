"""Reading the clinic agent's reply: order an exam, or commit to a diagnosis.

Three formats are accepted, checked in this order:

1. a JSON tool call, ``{"name": "order_exam", "arguments": {"exam": "CBC"}}`` or
   ``{"name": "diagnose", "arguments": {"diagnosis": "..."}}`` (OpenAI's
   ``{"function": {...}}`` wrapping and Qwen's ``<tool_call>`` tags too);
2. DiagAgent's free text: "... the following investigation(s) should be
   performed: X" or "The available information is sufficient to make a
   diagnosis. Diagnosis: Y" (a "Current diagnosis:" line is not final);
3. the simple form ``exam: X`` or ``diagnosis: Y``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Literal

from rounds.actions import InvalidAction, split_reasoning

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


def _json_objects(text: str) -> list[dict[str, Any]]:
    decoder = json.JSONDecoder()
    found: list[dict[str, Any]] = []
    index = text.find("{")
    while index != -1 and len(found) < 8:
        try:
            value, end = decoder.raw_decode(text, index)
        except json.JSONDecodeError:
            index = text.find("{", index + 1)
            continue
        if isinstance(value, dict):
            found.append(value)
        index = text.find("{", end)
    return found


def _tool_call(obj: dict[str, Any]) -> ClinicAction | None:
    call = obj.get("function") if isinstance(obj.get("function"), dict) else obj
    name = call.get("name") or call.get("tool")
    if not isinstance(name, str):
        return None
    arguments = call.get("arguments", call.get("parameters", call.get("args", {})))
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except json.JSONDecodeError as err:
            raise InvalidAction(
                f"The arguments of the {name} call are not valid JSON ({err.msg}). {FORMAT_HELP}"
            ) from err
    if not isinstance(arguments, dict):
        raise InvalidAction(
            f"The arguments of the {name} call must be a JSON object. {FORMAT_HELP}"
        )
    tool = name.strip().lower()
    if tool in EXAM_TOOLS:
        kind: Literal["exam", "diagnose"] = "exam"
        keys = ("exam", "name", "test", "examination", "exam_name")
    elif tool in DIAGNOSIS_TOOLS:
        kind = "diagnose"
        keys = ("diagnosis", "name", "final_diagnosis")
    else:
        raise InvalidAction(
            f"Unknown tool {name!r}. The tools are order_exam and diagnose. {FORMAT_HELP}"
        )
    value = next((arguments[k] for k in keys if k in arguments), None)
    note = ""
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        if len(value) > 1:
            note = f"You asked for {len(value)} exams at once; only the first, {value[0]!r}, was ordered. Order one exam per turn."
        value = value[0]
    if not isinstance(value, str) or not value.strip():
        raise InvalidAction(
            f"{tool} needs a non-empty string argument {keys[0]!r}, got {json.dumps(value)}. {FORMAT_HELP}"
        )
    return ClinicAction(kind, _clean(value), note)


def parse_action(text: str) -> ClinicAction:
    """Parse one reply; raise :class:`InvalidAction` (with the accepted formats) if it fits none."""
    body = split_reasoning(text).command
    if not body:
        raise InvalidAction(f"The reply has no action outside the reasoning. {FORMAT_HELP}")
    for obj in _json_objects(body):
        action = _tool_call(obj)
        if action is not None:
            return action
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
        name = _clean(exam_line.group("name"))
        if not name:
            raise InvalidAction(f"The exam name is empty. {FORMAT_HELP}")
        note = ""
        if final is not None and _clean(final.group("name")):
            note = "You gave an exam and a final diagnosis; the exam was ordered. Give the diagnosis on its own when you are ready."
        return ClinicAction("exam", name, note)
    if final is not None:
        name = _clean(final.group("name"))
        if not name:
            raise InvalidAction(f"The diagnosis is empty. {FORMAT_HELP}")
        return ClinicAction("diagnose", name)
    shown = body if len(body) <= 80 else body[:77] + "..."
    raise InvalidAction(f"I could not find an exam or a diagnosis in {shown!r}. {FORMAT_HELP}")
