"""Toy envs for the trainer's learning tests: chance success is low, the signal is clean.

- ``toys/Vowel-v0``: one turn; success when the reply starts with a vowel.
- ``toys/Vowels3-v0``: three turns; each turn's reply should start with a vowel.
  The outcome is 1 only if all three did; the ``turn`` component rewards each
  good turn, so turn-level advantages get a dense signal where the outcome is sparse.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import rounds
from rounds.text_env import EpisodeEnd, StepResult, TextEnv

VOWELS = tuple("aeiouAEIOU")


def starts_with_vowel(text: str) -> bool:
    stripped = text.strip()
    return bool(stripped) and stripped.startswith(VOWELS)


class VowelEnv(TextEnv):
    """Reply with a word that starts with a vowel."""

    reward_component_names = ("outcome", "format", "turn")
    default_reward_weights: ClassVar[Mapping[str, float]] = {
        "outcome": 1.0,
        "format": 0.0,
        "turn": 1.0,
    }
    rounds_needed = 1

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("invalid_action_penalty", 0.0)
        super().__init__(max_turns=self.rounds_needed, **kwargs)
        self.good = 0

    @property
    def system_prompt(self) -> str:
        return "Reply with one word."

    def task_ids(self, split: str | None = None) -> list[str]:
        return [f"{split or self.split}-{i}" for i in range(64)]

    def _begin(self, task_id: str, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        self.good = 0
        return f"Say a word ({task_id}).", {"answer": "a"}

    def _act(self, text: str) -> StepResult:
        good = starts_with_vowel(text)
        self.good += good
        return StepResult(
            "Next word." if self.turn < self.rounds_needed else "Done.",
            {"turn": float(good) if self.rounds_needed > 1 else 0.0},
        )

    def _finish(self, terminated: bool) -> EpisodeEnd:
        success = float(self.good == self.rounds_needed)
        return EpisodeEnd({"outcome": success}, {"success": success})


class Vowels3Env(VowelEnv):
    """Three words in a row that start with vowels."""

    rounds_needed = 3


rounds.register_env("toys/Vowel-v0", entry_point=f"{__name__}:VowelEnv")
rounds.register_env("toys/Vowels3-v0", entry_point=f"{__name__}:Vowels3Env")
