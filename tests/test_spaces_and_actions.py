from __future__ import annotations

import copy

import pytest

from rounds.actions import InvalidAction, clean_text, command_line, split_reasoning
from rounds.spaces import TextSpace


def test_text_space_contains_any_str_up_to_max_length() -> None:
    space = TextSpace(10)
    assert space.contains("")
    assert space.contains("héllo 😀\n")
    assert space.contains("x" * 10)
    assert not space.contains("x" * 11)
    assert not space.contains(b"bytes")
    assert not space.contains(3)


def test_text_space_samples_are_members_and_seeded() -> None:
    a, b = TextSpace(50, seed=1), TextSpace(50, seed=1)
    samples = [a.sample() for _ in range(20)]
    assert samples == [b.sample() for _ in range(20)]
    assert all(a.contains(s) for s in samples)


def test_text_space_equality() -> None:
    assert TextSpace(5) == TextSpace(5)
    assert TextSpace(5) != TextSpace(6)


@pytest.mark.parametrize(
    ("action", "message"),
    [
        ("", "empty"),
        ("   \n\t ", "empty"),
        ("\x00\x01\x02", "empty"),
        ("x" * 101, "101 characters"),
        (None, "must be text"),
        (42, "must be text"),
    ],
)
def test_clean_text_rejects_with_a_reason(action: object, message: str) -> None:
    with pytest.raises(InvalidAction, match=message):
        clean_text(action, max_chars=100)


def test_clean_text_removes_control_and_format_characters() -> None:
    assert clean_text("  go\x00 to\u200b fridge 1\x1b ", 100) == "go  to  fridge 1"
    assert clean_text(b"look\xff", 100) == "look\ufffd"
    assert clean_text("a\ud800b", 100) == "a b"


def test_split_reasoning_keeps_tags_and_finds_the_command() -> None:
    parsed = split_reasoning("<think>hmm</think><plan> heat it </plan>\nopen fridge 1")
    assert parsed.command == "open fridge 1"
    assert parsed.tags == {"think": "hmm", "plan": "heat it"}
    assert split_reasoning("<action>look</action> trailing").command == "look"
    cut = split_reasoning("<think>I was cut off while thinking")
    assert cut.command == "" and cut.tags["think"].startswith("I was cut off")


def test_command_line_takes_last_line_without_prompts() -> None:
    assert command_line("I should look around.\nAction: go to fridge 1.") == "go to fridge 1"
    assert command_line("> `open drawer 2`") == "open drawer 2"
    assert command_line("```\n```") == ""


# ------------------------------------------------------------ shared memory (AsyncVectorEnv)


def test_text_space_shared_memory_round_trips_any_str() -> None:
    from gymnasium.vector.utils import (
        create_shared_memory,
        read_from_shared_memory,
        write_to_shared_memory,
    )

    space = TextSpace(12)
    texts = ["a\nb\tc", "héllo 😀", "", "x" * 12, "lone \ud800", "\x00\x1b[0m"]
    memory = create_shared_memory(space, n=len(texts))
    view = read_from_shared_memory(space, memory, n=len(texts))
    assert tuple(view) == ("",) * len(texts)
    for index, text in enumerate(texts):
        write_to_shared_memory(space, index, text, memory)
    # the view read before the writes sees them (AsyncVectorEnv reads it once)
    assert tuple(view) == tuple(texts)
    assert view[1] == "héllo 😀" and view[-1] == "\x00\x1b[0m" and view[1:3] == ("héllo 😀", "")
    write_to_shared_memory(space, 3, "short", memory)
    assert view[3] == "short"
    assert copy.deepcopy(view) == (*texts[:3], "short", *texts[4:])
    assert isinstance(copy.deepcopy(view), tuple)
    with pytest.raises(ValueError, match="does not contain"):
        write_to_shared_memory(space, 0, "y" * 13, memory)


def test_gymnasium_text_shared_memory_cannot_carry_a_newline() -> None:
    """Why TextSpace registers its own functions: Text's raise on characters outside the charset."""
    from gymnasium.spaces import Text
    from gymnasium.vector.utils import create_shared_memory, write_to_shared_memory

    space = Text(8)
    with pytest.raises(KeyError):
        write_to_shared_memory(space, 0, "a\nb", create_shared_memory(space, n=1))
