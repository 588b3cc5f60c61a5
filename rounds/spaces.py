"""Text spaces: the observation and action spaces of every `rounds` env.

Gymnasium's :class:`~gymnasium.spaces.Text` only contains strings over a fixed
character set. An LLM agent's action is arbitrary text (any language, emoji,
markup), so `rounds` widens membership to *any* Python ``str`` up to a maximum
length while keeping ``Text``'s sampling for ``check_env`` and random agents.
"""

from __future__ import annotations

import string
from typing import Any

import numpy as np
from gymnasium import spaces

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
