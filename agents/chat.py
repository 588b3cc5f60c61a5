"""Conversation helpers of the chat loop: tool calls, context fitting, message bookkeeping."""

from __future__ import annotations

import contextlib
import json
import re
import uuid
from collections.abc import Callable
from typing import Any

from rounds.actions import InvalidAction, decode_json
from rounds.agents.base import Action

TRUNCATION_MARKER = "[earlier observation omitted to fit the context window]"

_TOOL_CALL = re.compile(r"<tool_call>\s*(?P<body>.*?)\s*</tool_call>", re.DOTALL)


def tool_calls_in_text(text: str) -> list[dict[str, Any]]:
    """Tool calls a model wrote as ``<tool_call>{"name": ..., "arguments": ...}</tool_call>``."""
    calls = []
    for match in _TOOL_CALL.finditer(text):
        try:
            body = decode_json(match.group("body"))
        except InvalidAction:
            continue  # not a call; the env reads the text and says what is wrong
        if isinstance(body, dict) and isinstance(body.get("name"), str):
            arguments = body.get("arguments", {})
            calls.append(
                {
                    "id": f"call_{uuid.uuid4().hex[:12]}",
                    "type": "function",
                    "function": {
                        "name": body["name"],
                        "arguments": arguments
                        if isinstance(arguments, str)
                        else json.dumps(arguments),
                    },
                }
            )
    return calls


def tool_call_text(call: dict[str, Any]) -> str:
    """The env-facing text of a structured tool call: ``{"name": ..., "arguments": {...}}``."""
    function = call.get("function") or {}
    arguments: Any = function.get("arguments", {})
    if isinstance(arguments, str):
        # Malformed arguments stay a string; the env tells the agent what is wrong with them.
        with contextlib.suppress(InvalidAction):
            arguments = decode_json(arguments) if arguments.strip() else {}
    return json.dumps({"name": function.get("name"), "arguments": arguments})


def append_turn(messages: list[dict[str, Any]], action: Action, observation: str) -> None:
    """Record one turn: the assistant's reply, then the env's observation (as a tool result
    when the reply was a tool call)."""
    if action.tool_calls:
        content = _TOOL_CALL.sub("", action.text).strip()
        messages.append({"role": "assistant", "content": content, "tool_calls": action.tool_calls})
        messages.append(
            {
                "role": "tool",
                "tool_call_id": action.tool_calls[0].get("id", ""),
                "content": observation,
            }
        )
    else:
        messages.append({"role": "assistant", "content": action.text})
        messages.append({"role": "user", "content": observation})


def approximate_tokens(message: dict[str, Any]) -> int:
    """A tokenizer-free token estimate (about 4 characters a token, plus message overhead)."""
    text = str(message.get("content") or "") + json.dumps(message.get("tool_calls") or [])
    return len(text) // 4 + 4


def fit_messages(
    messages: list[dict[str, Any]],
    max_tokens: int,
    count: Callable[[dict[str, Any]], int] = approximate_tokens,
) -> list[dict[str, Any]]:
    """The conversation cut to ``max_tokens``: the oldest observations become a marker first.

    The system prompt is never cut. Observations (user and tool messages) are
    replaced oldest first, the task's first observation last; if the conversation
    still does not fit, the longest remaining observation is clipped.
    """
    fitted = [dict(m) for m in messages]
    total = sum(count(m) for m in fitted)
    if total <= max_tokens:
        return fitted
    observations = [i for i, m in enumerate(fitted) if m.get("role") in ("user", "tool")]
    order = observations[1:-1] + observations[:1]
    for index in order:
        if total <= max_tokens:
            break
        before = count(fitted[index])
        fitted[index]["content"] = TRUNCATION_MARKER
        total += count(fitted[index]) - before
    if total > max_tokens and observations:
        index = max(observations, key=lambda i: count(fitted[i]))
        content = str(fitted[index].get("content") or "")
        others = total - count(fitted[index])
        low, high = 0, len(content)  # the longest tail of the observation that fits
        while low < high:
            keep = (low + high + 1) // 2
            candidate = {
                **fitted[index],
                "content": f"{TRUNCATION_MARKER}\n{content[len(content) - keep :]}",
            }
            if others + count(candidate) <= max_tokens:
                low = keep
            else:
                high = keep - 1
        fitted[index]["content"] = f"{TRUNCATION_MARKER}\n{content[len(content) - low :]}"
    return fitted
