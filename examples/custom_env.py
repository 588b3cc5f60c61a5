"""Define, register and play a new text env on `rounds.TextEnv` (a number-guessing game)."""

from typing import Any

import gymnasium as gym

import rounds
from rounds import EpisodeEnd, InvalidAction, StepResult, TextEnv


class GuessNumberEnv(TextEnv):
    """Guess a secret number from 1 to 100; each wrong guess is answered 'higher' or 'lower'."""

    reward_component_names = ("outcome", "format", "closer")
    default_reward_weights = {"outcome": 1.0, "format": 1.0, "closer": 0.1}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(max_turns=kwargs.pop("max_turns", 10), **kwargs)
        self.secret = self.previous_gap = 0

    @property
    def system_prompt(self) -> str:
        return "Guess the secret integer from 1 to 100. Reply with just the number."

    def task_ids(self, split: str | None = None) -> list[str]:
        offset = {"train": 0, "validation": 1000, "test": 2000}[split or self.split]
        return [str(offset + i) for i in range(1000)]

    def _begin(self, task_id: str, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        self.secret = int(task_id) * 37 % 100 + 1
        self.previous_gap = 100
        return "I am thinking of a number from 1 to 100.", {"answer": str(self.secret)}

    def _act(self, text: str) -> StepResult:
        if not text.strip().isdigit() or not 1 <= int(text) <= 100:
            raise InvalidAction(f"{text[:40]!r} is not a number from 1 to 100.")
        gap = abs(int(text) - self.secret)
        closer = float(gap < self.previous_gap)
        self.previous_gap = gap
        direction = "higher" if int(text) < self.secret else "lower"
        reply = "Correct!" if gap == 0 else f"No, it is {direction} than {text}."
        return StepResult(reply, {"closer": closer}, terminated=gap == 0)

    def _finish(self, terminated: bool) -> EpisodeEnd:
        return EpisodeEnd({"outcome": float(terminated)}, {"success": float(terminated)})


rounds.register_env("examples/GuessNumber-v0", entry_point=f"{__name__}:GuessNumberEnv")

if __name__ == "__main__":
    env = gym.make("examples/GuessNumber-v0")
    observation, info = env.reset(seed=0)
    low, high, terminated, truncated = 1, 100, False, False
    while not (terminated or truncated):  # binary search
        guess = (low + high) // 2
        observation, reward, terminated, truncated, info = env.step(str(guess))
        print(f"{guess:>3} -> {observation} (reward {reward:+.2f})")
        low, high = (guess + 1, high) if "higher" in observation else (low, guess - 1)
    print("outcome:", info["outcome"], "metrics:", info["metrics"])
