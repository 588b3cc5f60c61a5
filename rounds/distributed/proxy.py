"""An env that lives elsewhere, seen through a local :class:`~rounds.text_env.TextEnv`.

The chat loop, the trainer and ``rounds eval`` build a conversation from what a
`rounds` env declares about itself (system prompt, tools, task ids, what the
replay shows) and drive it with ``reset``/``step``. An env run in another
process, a Ray actor or behind an HTTP server keeps that contract through a
:class:`ProxyEnv`: the description is fetched once, when the env is opened, and
``reset``/``step``/``close`` are forwarded whole, so the remote env's own
``TextEnv.step`` (turn limit, invalid actions, shaping) is the only one that runs.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from typing import Any, SupportsFloat

import gymnasium as gym
from pydantic import BaseModel, ConfigDict

from rounds.text_env import EpisodeEnd, StepResult, TextEnv

#: What ``env.step`` returns: observation, reward, terminated, truncated, info.
StepTuple = tuple[str, float, bool, bool, dict[str, Any]]


class EnvDescription(BaseModel):
    """Everything a caller reads from a `rounds` env besides ``reset``/``step``: JSON-safe, so
    it crosses a process, a Ray actor or HTTP (``GET /schema``) unchanged."""

    model_config = ConfigDict(extra="forbid")

    env_id: str
    system_prompt: str
    tools: list[dict[str, Any]]
    split: str
    splits: list[str]
    task_ids: dict[str, list[str]]
    max_turns: int
    max_action_chars: int
    max_observation_chars: int
    reward_component_names: list[str]
    outcome_components: list[str]
    reward_weights: dict[str, float]
    unrecorded_info_keys: list[str]
    episode_meta: dict[str, Any]


def describe_env(env_id: str, env: TextEnv) -> EnvDescription:
    """The description of a live `rounds` env (its split's task ids, and every other split's)."""
    return EnvDescription(
        env_id=env_id,
        system_prompt=env.system_prompt,
        tools=list(env.tools),
        split=env.split,
        splits=list(env.splits),
        task_ids={split: [str(t) for t in env.task_ids(split)] for split in env.splits},
        max_turns=env.max_turns,
        max_action_chars=env.max_action_chars,
        max_observation_chars=env.max_observation_chars,
        reward_component_names=list(env.reward_component_names),
        outcome_components=list(env.outcome_components),
        reward_weights={k: float(v) for k, v in env.reward_weights.items()},
        unrecorded_info_keys=list(env.unrecorded_info_keys),
        episode_meta=env.episode_meta(),
    )


class ProxyEnv(TextEnv):
    """A `rounds` env whose episodes run elsewhere; subclasses say how to reach it.

    ``reset`` and ``step`` forward to :meth:`_remote_reset` and :meth:`_remote_step`;
    the remote env does every check itself, and its return values come back unchanged.
    ``scripted_policies`` is empty: a baseline that reads the true state needs the env
    in its own process.
    """

    def __init__(self, description: EnvDescription) -> None:
        self.description = description
        # The remote env's class attributes become this instance's (TextEnv checks against
        # them); they are per instance here because one proxy class stands for every env.
        self.splits = tuple(description.splits)  # type: ignore[misc]
        self.reward_component_names = tuple(description.reward_component_names)  # type: ignore[misc]
        self.outcome_components = tuple(description.outcome_components)  # type: ignore[misc]
        self.unrecorded_info_keys = tuple(description.unrecorded_info_keys)  # type: ignore[misc]
        super().__init__(
            max_turns=description.max_turns,
            split=description.split,
            reward_weights=description.reward_weights,
            max_action_chars=description.max_action_chars,
            max_observation_chars=description.max_observation_chars,
        )

    # ------------------------------------------------------------ how to reach it

    @abstractmethod
    def _remote_reset(
        self, seed: int | None, options: dict[str, Any] | None
    ) -> tuple[str, dict[str, Any]]:
        """``reset`` on the remote env."""

    @abstractmethod
    def _remote_step(self, action: str) -> StepTuple:
        """``step`` on the remote env."""

    @abstractmethod
    def _remote_close(self) -> None:
        """Release the remote env; never raises."""

    # ------------------------------------------------------------ the contract

    @property
    def system_prompt(self) -> str:
        return self.description.system_prompt

    @property
    def tools(self) -> list[dict[str, Any]]:
        return self.description.tools

    def task_ids(self, split: str | None = None) -> Sequence[str]:
        return self.description.task_ids.get(split or self.split, [])

    def episode_meta(self) -> dict[str, Any]:
        return dict(self.description.episode_meta)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[str, dict[str, Any]]:
        """Reset the remote env (same seed and options, same episode as the local env)."""
        gym.Env.reset(
            self, seed=seed
        )  # Gymnasium's own seeding of np_random, as env_checker expects
        observation, info = self._remote_reset(seed, options)
        self.task_id = str(info.get("task_id")) if info.get("task_id") is not None else None
        self.turn = 0
        self._started = True
        self._done = False
        self._last_observation = observation
        return observation, info

    def step(self, action: str) -> tuple[str, SupportsFloat, bool, bool, dict[str, Any]]:
        """Step the remote env with the agent's raw text."""
        observation, reward, terminated, truncated, info = self._remote_step(action)
        self.turn = int(info.get("turn", self.turn + 1))
        self._done = bool(terminated or truncated)
        self._last_observation = observation
        return observation, reward, terminated, truncated, info

    def close(self) -> None:
        self._remote_close()
        super().close()

    # The local half of TextEnv never runs here: reset and step above replace it whole.

    def _begin(self, task_id: str, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        raise NotImplementedError("a ProxyEnv's reset runs on the remote env")

    def _act(self, text: str) -> StepResult:
        raise NotImplementedError("a ProxyEnv's step runs on the remote env")

    def _finish(self, terminated: bool) -> EpisodeEnd:
        raise NotImplementedError("a ProxyEnv's episode is scored by the remote env")
