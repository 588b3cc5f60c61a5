"""Text spaces: the observation and action spaces of every `rounds` env.

Gymnasium's :class:`~gymnasium.spaces.Text` only contains strings over a fixed
character set. An LLM agent's action is arbitrary text (any language, emoji,
markup), so `rounds` widens membership to *any* Python ``str`` up to a maximum
length while keeping ``Text``'s sampling for ``check_env`` and random agents.

Gymnasium's ``AsyncVectorEnv`` passes observations through shared memory by
default, with functions that dispatch on the space's type. ``Text``'s versions
store indices into the charset, so any character outside it (a newline, in every
observation) raises ``KeyError``. ``TextSpace`` registers its own: each string is
stored as its Unicode code points (``int32``, padded with ``-1``), so every
``str`` the space contains travels unchanged.
"""

from __future__ import annotations

import multiprocessing as mp
import string
from collections.abc import Sequence
from types import ModuleType
from typing import Any, overload

import numpy as np
from gymnasium import spaces
from gymnasium.vector.utils import shared_memory

#: Characters :meth:`TextSpace.sample` draws from when no charset is given.
SAMPLE_CHARSET = string.ascii_letters + string.digits + " .,:;-_'\"()<>/"


class TextSpace(spaces.Text):
    """Any ``str`` of at most ``max_length`` characters.

    Args:
        max_length: the longest string the space contains.
        min_length: the shortest string the space contains (default 0, the empty string).
        sample_charset: characters :meth:`sample` uses; membership does not depend on it.
        seed: seed for :meth:`sample`.
    """

    def __init__(
        self,
        max_length: int,
        *,
        min_length: int = 0,
        sample_charset: str = SAMPLE_CHARSET,
        seed: int | np.random.Generator | None = None,
    ) -> None:
        super().__init__(max_length, min_length=min_length, charset=sample_charset, seed=seed)

    def contains(self, x: Any) -> bool:
        """True for any ``str`` whose length lies within the space's bounds."""
        return isinstance(x, str) and self.min_length <= len(x) <= self.max_length

    def __repr__(self) -> str:
        return f"TextSpace(max_length={self.max_length}, min_length={self.min_length})"

    def __eq__(self, other: Any) -> bool:
        return (
            isinstance(other, TextSpace)
            and self.max_length == other.max_length
            and self.min_length == other.min_length
        )

    def __hash__(self) -> int:
        return hash((TextSpace, self.min_length, self.max_length))


#: Padding after a string's code points in shared memory (no code point is negative).
_PAD = -1


def _code_points(memory: Any, space: TextSpace, n: int) -> np.ndarray:
    return np.frombuffer(memory.get_obj(), dtype=np.int32).reshape((n, space.max_length))


@shared_memory.create_shared_memory.register(TextSpace)
def _create_text_space_memory(space: TextSpace, n: int = 1, ctx: ModuleType = mp) -> Any:
    """``n`` rows of ``max_length`` int32 code points."""
    memory = ctx.Array(np.dtype(np.int32).char, n * space.max_length)
    _code_points(memory, space, n).fill(_PAD)
    return memory


@shared_memory.write_to_shared_memory.register(TextSpace)
def _write_text_space_memory(space: TextSpace, index: int, value: str, memory: Any) -> None:
    """Row ``index`` := the code points of ``value`` (lone surrogates included), then padding."""
    if not space.contains(value):
        raise ValueError(f"{space!r} does not contain a {type(value).__name__} of this length")
    points = np.frombuffer(value.encode("utf-32-le", "surrogatepass"), dtype="<u4")
    row = np.frombuffer(memory.get_obj(), dtype=np.int32)[
        index * space.max_length : (index + 1) * space.max_length
    ]
    row[: len(points)] = points
    row[len(points) :] = _PAD


class SharedTexts(Sequence[str]):
    """A live view of the strings in a ``TextSpace``'s shared memory.

    ``AsyncVectorEnv`` reads its shared memory once, when it starts, and relies on
    the result being a view that the workers' writes update (numpy arrays are).
    A tuple of ``str`` would be frozen at the empty strings, so this view decodes a
    row when it is read; a deep copy (what the vector env returns by default,
    ``copy=True``) is a plain tuple of ``str``, as a sync vector env returns.
    """

    def __init__(self, rows: np.ndarray) -> None:
        self._rows = rows

    def __len__(self) -> int:
        return len(self._rows)

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[str, ...]: ...
    def __getitem__(self, index: int | slice) -> str | tuple[str, ...]:
        if isinstance(index, slice):
            return tuple(self[i] for i in range(len(self))[index])
        row: np.ndarray = self._rows[index]
        padding = np.flatnonzero(row == _PAD)
        length = int(padding[0]) if len(padding) else len(row)
        return row[:length].astype("<u4").tobytes().decode("utf-32-le", "surrogatepass")

    def __deepcopy__(self, memo: dict[int, Any]) -> tuple[str, ...]:
        return tuple(self)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, SharedTexts | tuple | list):
            return tuple(self) == tuple(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        return f"SharedTexts({tuple(self)!r})"


@shared_memory.read_from_shared_memory.register(TextSpace)
def _read_text_space_memory(space: TextSpace, memory: Any, n: int = 1) -> SharedTexts:
    """A live view of the ``n`` strings (see :class:`SharedTexts`)."""
    return SharedTexts(_code_points(memory, space, n))
