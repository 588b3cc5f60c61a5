"""``bench/Busy-v0``: a CPU-heavy pure-Python env for the env-worker benchmark.

Each step runs ``work`` iterations of integer arithmetic in Python (about 8 ms per
step at the default on one core, holding the GIL throughout), the shape of a
simulator written in plain Python. Registered when imported; env workers load it as
``benchmarks.busy_env:bench/Busy-v0``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rounds.registration import register_env
from rounds.text_env import EpisodeEnd, StepResult, TextEnv


class BusyEnv(TextEnv):
    """Every action costs ``work`` iterations of pure-Python arithmetic; ``max_turns`` turns."""

    def __init__(self, work: int = 60_000, max_turns: int = 10, **kwargs: Any) -> None:
        super().__init__(max_turns=max_turns, **kwargs)
        self.work = work
        self.state = 0

    @property
    def system_prompt(self) -> str:
        return "Say anything; the simulator advances one tick per turn."

    def task_ids(self, split: str | None = None) -> Sequence[str]:
        return [f"busy-{split or self.split}-{i:03d}" for i in range(100)]

    def _begin(self, task_id: str, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        self.state = int(task_id.rsplit("-", 1)[1])
        return f"tick 0, state {self.state}", {}

    def _act(self, text: str) -> StepResult:
        x = self.state + len(text)
        for i in range(self.work):
            x = (x * 1_103_515_245 + 12_345 + i) % 2_147_483_648
        self.state = x
        return StepResult(observation=f"tick {self.turn}, state {x}")

    def _finish(self, terminated: bool) -> EpisodeEnd:
        return EpisodeEnd(components={"outcome": 0.0}, metrics={"ticks": float(self.turn)})


register_env("bench/Busy-v0", "benchmarks.busy_env:BusyEnv")
