"""The SWE env's tools and how an agent's reply becomes a tool call.

Two protocols, both parsed: a JSON tool call (``{"name": "bash", "arguments":
{...}}``, OpenAI's ``{"function": {...}}`` with string arguments, optionally in
a ``<tool_call>`` block; read by :func:`rounds.actions.parse_tool_calls`), and
plain text:

- ``bash: CMD`` or a fenced ```` ```bash ```` block
- ``view PATH`` / ``view PATH 10-40``
- ``search PATTERN [PATH]``
- ``edit PATH`` then ``<old>...</old><new>...</new>`` (string replacement)
- ``insert PATH LINE`` then ``<new>...</new>`` (insert after line LINE; 0 = top)
- ``submit``

Every error says what was wrong and shows the right form.
"""

from __future__ import annotations

import re
from typing import Any

from rounds.actions import InvalidAction, ToolCall, excerpt, parse_tool_calls, split_reasoning

TOOL_NAMES = ("bash", "view", "edit", "search", "submit")

FORMAT_HELP = (
    "Call one tool per turn, as JSON: "
    '{"name": "bash", "arguments": {"command": "python3 -m pytest -q"}}, '
    'or as text: "bash: CMD", "view PATH 1-40", "search PATTERN [PATH]", '
    '"edit PATH" then <old>exact old text</old><new>new text</new>, '
    '"insert PATH LINE" then <new>text</new>, or "submit".'
)

TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "bash",
            "description": "Run a bash command in the repository (no network). Output is truncated when long.",
            "parameters": {
                "type": "object",
                "properties": {
                    "command": {"type": "string", "description": "The command line."},
                    "timeout": {"type": "number", "description": "Seconds (default 30)."},
                },
                "required": ["command"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "view",
            "description": "Show a file with line numbers (optionally a line range), or list a directory.",
            "parameters": {
                "type": "object",
                "properties": {
                    "path": {"type": "string"},
                    "start_line": {"type": "integer", "description": "First line, from 1."},
                    "end_line": {"type": "integer", "description": "Last line (inclusive)."},
                },
                "required": ["path"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "edit",
            "description": (
                "Edit a file. command 'str_replace': replace old_str (which must occur exactly "
                "once) with new_str. command 'insert': insert new_str after line insert_line "
                "(0 inserts at the top). command 'create': write a new file with new_str."
            ),
            "parameters": {
                "type": "object",
                "properties": {
                    "command": {"type": "string", "enum": ["str_replace", "insert", "create"]},
                    "path": {"type": "string"},
                    "old_str": {"type": "string"},
                    "new_str": {"type": "string"},
                    "insert_line": {"type": "integer"},
                },
                "required": ["path", "new_str"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "search",
            "description": "Search file contents for a regular expression (grep -rnE), optionally under a path.",
            "parameters": {
                "type": "object",
                "properties": {
                    "pattern": {"type": "string"},
                    "path": {
                        "type": "string",
                        "description": "File or directory (default: the repository).",
                    },
                },
                "required": ["pattern"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "submit",
            "description": "Submit the current state of the repository as your fix; the hidden tests run and the episode ends.",
            "parameters": {"type": "object", "properties": {}},
        },
    },
]


_FENCE = re.compile(r"```(?:bash|sh|shell)\s*\n(?P<body>.*?)```", re.DOTALL)
_BLOCK = re.compile(r"<(?P<tag>old|new)>\n?(?P<body>.*?)\n?</(?P=tag)>", re.DOTALL)
_RANGE = re.compile(r"^(?P<start>\d+)\s*(?:[-:,]\s*(?P<end>-?\d+))?$")


def _plain(text: str) -> ToolCall | None:
    fence = _FENCE.search(text)
    if fence is not None and text.startswith("```"):
        return ToolCall("bash", {"command": fence.group("body").strip()})
    first, _, rest = text.partition("\n")
    head = first.strip().strip("`").strip()
    word, _, tail = head.partition(" ")
    verb = word.rstrip(":").lower()
    if verb == "bash":
        command = tail.strip()
        if rest.strip():
            command = f"{command}\n{rest}".strip() if command else rest.strip()
        if fence is not None and (not command or command.startswith("```")):
            command = fence.group("body").strip()
        return ToolCall("bash", {"command": command})
    if fence is not None:
        return ToolCall("bash", {"command": fence.group("body").strip()})
    if verb == "submit":
        return ToolCall("submit", {})
    if verb == "view":
        parts = tail.split()
        if not parts:
            raise InvalidAction(f"view needs a path, e.g. 'view src/module.py 1-40'. {FORMAT_HELP}")
        arguments: dict[str, Any] = {"path": parts[0]}
        if len(parts) > 1:
            match = _RANGE.match("".join(parts[1:]))
            if match is None:
                raise InvalidAction(
                    f"'{' '.join(parts[1:])}' is not a line range; write e.g. 'view {parts[0]} 10-40'."
                )
            arguments["start_line"] = int(match.group("start"))
            if match.group("end") is not None:
                arguments["end_line"] = int(match.group("end"))
        return ToolCall("view", arguments)
    if verb == "search":
        query = tail.strip()
        if not query:
            raise InvalidAction(
                f"search needs a pattern, e.g. 'search def parse src'. {FORMAT_HELP}"
            )
        pattern, path = query, None
        if " " in query:
            candidate_pattern, _, candidate_path = query.rpartition(" ")
            if "/" in candidate_path or "." in candidate_path:
                pattern, path = candidate_pattern, candidate_path
        pattern = pattern.strip().strip("'\"")
        return ToolCall("search", {"pattern": pattern, **({"path": path} if path else {})})
    if verb in ("edit", "insert"):
        parts = tail.split()
        blocks = {m.group("tag"): m.group("body") for m in _BLOCK.finditer(rest)}
        if verb == "edit":
            if len(parts) != 1 or "old" not in blocks or "new" not in blocks:
                raise InvalidAction(
                    "Write an edit as 'edit PATH' on the first line, then <old>the exact text to "
                    "replace</old> and <new>its replacement</new>."
                )
            return ToolCall(
                "edit",
                {
                    "command": "str_replace",
                    "path": parts[0],
                    "old_str": blocks["old"],
                    "new_str": blocks["new"],
                },
            )
        if len(parts) != 2 or not parts[1].isdigit() or "new" not in blocks:
            raise InvalidAction(
                "Write an insertion as 'insert PATH LINE' on the first line (LINE: insert after "
                "this line, 0 for the top), then <new>the text</new>."
            )
        return ToolCall(
            "edit",
            {
                "command": "insert",
                "path": parts[0],
                "insert_line": int(parts[1]),
                "new_str": blocks["new"],
            },
        )
    return None


def parse_tool_call(text: str) -> ToolCall:
    """The tool call in an agent's reply (reasoning blocks are ignored).

    Raises:
        InvalidAction: no tool call, an unknown tool, or malformed arguments.
    """
    body = split_reasoning(text).command
    calls = parse_tool_calls(body)
    if calls:
        call: ToolCall | None = ToolCall(calls[0].name.lower(), calls[0].arguments)
    else:
        call = _plain(body.strip())
    if call is None:
        raise InvalidAction(f"No tool call found in the reply. {FORMAT_HELP}")
    if call.name not in TOOL_NAMES:
        raise InvalidAction(
            f"Unknown tool {excerpt(call.name, 40)!r}; the tools are {', '.join(TOOL_NAMES)}. "
            f"{FORMAT_HELP}"
        )
    return call
