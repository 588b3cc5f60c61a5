"""The GUI action language, parsed from JSON tool calls or plain text.

``click(id)``, ``click(x, y)``, ``type(id, "text")``, ``scroll(up|down)``,
``back()`` and ``finish()`` / ``finish("answer")`` are accepted as a plain-text
call on the reply's last line (``click(3)``, ``type(5, "Ana")``), or as a JSON
tool call ``{"name": "click", "arguments": {"id": 3}}`` (also inside
``<tool_call>`` tags). Both backends (the built-in apps and MiniWoB++) take
exactly this language. Anything else raises :class:`InvalidAction` with what
was wrong and the accepted forms.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from typing import Any

from rounds.actions import InvalidAction, command_line, decode_json, split_reasoning

VERBS = ("click", "type", "scroll", "back", "finish")
ALIASES = {"tap": "click", "press": "click", "input": "type", "fill": "type", "done": "finish"}
USAGE = (
    'Act with one of: click(id), click(x, y), type(id, "text"), scroll(up) or scroll(down), '
    'back(), finish() (or finish("answer") for a question), as plain text on the last line '
    'or as a JSON tool call {"name": "click", "arguments": {"id": 3}}.'
)
_CALL = re.compile(r"^(?P<verb>[A-Za-z_]+)\s*(?:\((?P<args>.*)\))?\s*;?$", re.DOTALL)
_TOOL_CALL = re.compile(r"<tool_call>\s*(?P<body>.*?)\s*(?:</tool_call>|$)", re.DOTALL)


@dataclass(frozen=True)
class GuiAction:
    """One parsed action."""

    verb: str
    element: int | None = None
    x: int | None = None
    y: int | None = None
    text: str | None = None
    direction: str | None = None


def tool_specs() -> list[dict[str, Any]]:
    """The action language as OpenAI function-calling tools."""

    def tool(name: str, description: str, properties: dict[str, Any], required: list[str]) -> Any:
        return {
            "type": "function",
            "function": {
                "name": name,
                "description": description,
                "parameters": {"type": "object", "properties": properties, "required": required},
            },
        }

    integer = {"type": "integer"}
    return [
        tool(
            "click",
            "Click an element by its id, or a point on the screen by x and y (pixels).",
            {"id": integer, "x": integer, "y": integer},
            [],
        ),
        tool(
            "type",
            "Replace the text of a text field with the given text.",
            {"id": integer, "text": {"type": "string"}},
            ["id", "text"],
        ),
        tool(
            "scroll",
            "Scroll the screen's content.",
            {"direction": {"type": "string", "enum": ["up", "down"]}},
            ["direction"],
        ),
        tool("back", "Close the open dialog or menu, else go back one screen.", {}, []),
        tool(
            "finish",
            "End the episode: the task is done (give the answer if the task asks a question).",
            {"answer": {"type": "string"}},
            [],
        ),
    ]


def parse_action(text: str) -> GuiAction:
    """Parse one reply into a :class:`GuiAction`; raise :class:`InvalidAction` if it is not one."""
    command = split_reasoning(text).command
    if not command:
        raise InvalidAction(f"There is no action after the reasoning. {USAGE}")
    tool_call = _TOOL_CALL.search(command)
    if tool_call is not None:
        return _from_json(tool_call.group("body"))
    stripped = command.strip()
    if stripped.startswith("{") or stripped.startswith("```json"):
        body = stripped.removeprefix("```json").removesuffix("```")
        return _from_json(body)
    return _from_text(command_line(command))


def _from_json(body: str) -> GuiAction:
    try:
        call = decode_json(body, "The tool call")
    except InvalidAction as err:
        raise InvalidAction(f"{err} {USAGE}") from None
    if isinstance(call, dict) and isinstance(call.get("function"), dict):
        call = call["function"]
    if not isinstance(call, dict) or not isinstance(call.get("name"), str):
        raise InvalidAction(f'A tool call must be an object with a "name". {USAGE}')
    arguments = call.get("arguments", {})
    if isinstance(arguments, str):
        arguments = decode_json(arguments, "The tool call's arguments") if arguments.strip() else {}
    if not isinstance(arguments, dict):
        raise InvalidAction('A tool call\'s "arguments" must be an object, e.g. {"id": 3}.')
    return _build(call["name"], [], arguments)


def _from_text(line: str) -> GuiAction:
    match = _CALL.match(line)
    if match is None:
        words = line.split()
        if len(words) == 2 and words[0].lower() == "scroll":
            return _build("scroll", [words[1]], {})
        raise InvalidAction(f"{_short(line)} is not an action. {USAGE}")
    verb, args = match.group("verb"), match.group("args") or ""
    positional, keywords = _arguments(verb, args)
    return _build(verb, positional, keywords)


def _arguments(verb: str, args: str) -> tuple[list[Any], dict[str, Any]]:
    """The call's arguments: Python literals (bare words as strings), else a lenient split."""
    if not args.strip():
        return [], {}
    try:
        tree = ast.parse(f"f({args})", mode="eval")
        call = tree.body
        if isinstance(call, ast.Call):
            return [_literal(a) for a in call.args], {
                k.arg: _literal(k.value) for k in call.keywords if k.arg
            }
    except (SyntaxError, ValueError, TypeError, RecursionError, MemoryError):
        pass
    # type(3, hello world): everything after the first comma is the text.
    head, _, rest = args.partition(",")
    values: list[Any] = [head.strip()]
    if rest:
        values.append(rest.strip().strip("\"'"))
    return values, {}


def _literal(node: ast.expr) -> Any:
    if isinstance(node, ast.Name):
        return node.id
    return ast.literal_eval(node)


def _build(verb: str, positional: list[Any], keywords: dict[str, Any]) -> GuiAction:
    name = ALIASES.get(verb.lower(), verb.lower())
    if name not in VERBS:
        raise InvalidAction(f"Unknown action {_short(verb)}. {USAGE}")
    if name == "click":
        if "x" in keywords or "y" in keywords or len(positional) == 2:
            x = keywords.get("x", positional[0] if positional else None)
            y = keywords.get("y", positional[1] if len(positional) > 1 else None)
            return GuiAction("click", x=_integer(x, "x"), y=_integer(y, "y"))
        element = keywords.get("id", keywords.get("element", positional[0] if positional else None))
        if element is None:
            raise InvalidAction("click needs an element id, click(3), or a point, click(120, 300).")
        return GuiAction("click", element=_integer(element, "id"))
    if name == "type":
        element = keywords.get("id", positional[0] if positional else None)
        text = keywords.get("text", positional[1] if len(positional) > 1 else None)
        if element is None or text is None:
            raise InvalidAction('type needs an element id and the text: type(5, "Ana Lima").')
        if not isinstance(text, str | int | float):
            raise InvalidAction('The text to type must be a string, e.g. type(5, "Ana Lima").')
        return GuiAction("type", element=_integer(element, "id"), text=str(text))
    if name == "scroll":
        direction = keywords.get("direction", positional[0] if positional else None)
        if not isinstance(direction, str) or direction.lower() not in ("up", "down"):
            raise InvalidAction("scroll takes a direction, up or down: scroll(down).")
        return GuiAction("scroll", direction=direction.lower())
    if name == "finish":
        answer = keywords.get("answer", positional[0] if positional else None)
        return GuiAction("finish", text=None if answer is None else str(answer))
    return GuiAction("back")


def _integer(value: Any, what: str) -> int:
    if isinstance(value, list | tuple) and len(value) == 1:
        return _integer(value[0], what)  # click([3]), as the tree writes ids
    if isinstance(value, bool):
        raise InvalidAction(f"{what} must be a whole number, not {value!r}.")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        cleaned = value.strip().strip("[]#")
        if re.fullmatch(r"-?\d{1,9}", cleaned):
            return int(cleaned)
    raise InvalidAction(f"{what} must be a whole number, not {_short(str(value))}.")


def _short(text: str, limit: int = 60) -> str:
    text = text.strip()
    return repr(text if len(text) <= limit else text[:limit] + "…")
