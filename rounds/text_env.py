"""The one base class of every `rounds` text environment.

:class:`TextEnv` implements the env contract of ``DESIGN.md`` once: text
spaces, seeding and task selection, the turn limit, action cleaning and the
invalid-action path (a clear observation, ``info["invalid_action"]`` and the
configured penalty, never an exception), reward components and their weighting,
and the terminal ``outcome``/``metrics``. A concrete env supplies the task: how
to begin it, how to act on a cleaned command, and how to score its end.
"""

from __future__ import annotations

import re
from abc import abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium.error import ResetNeeded

from rounds.actions import InvalidAction, clean_text
from rounds.shaping import weighted_reward
from rounds.spaces import TextSpace

#: How an agent may answer: free text, or the number of a listed admissible command.
ACTION_MODES = ("text", "choice")
_NUMBER = re.compile(r"\s*(\d{1,6})\s*\.?\s*")

#: A baseline policy that acts from the env's true state: ``policy(env, rng) -> action text``.
ScriptedPolicy = Callable[["TextEnv", np.random.Generator], str]


@dataclass
class StepResult:
    """What a concrete env returns for one acted-on command."""

    observation: str
    components: dict[str, float] = field(default_factory=dict)
    terminated: bool = False
    info: dict[str, Any] = field(default_factory=dict)
    invalid: bool = False


@dataclass
class EpisodeEnd:
    """How an episode ended: its outcome reward components and its task metrics."""

    components: dict[str, float]
    metrics: dict[str, float]


class TextEnv(gym.Env[str, str]):
    """A multi-turn text environment for LLM agents.

    Observations and actions are strings. A subclass implements
    :meth:`_begin` (start a task), :meth:`_act` (apply a cleaned action),
    :meth:`_finish` (score the episode), :attr:`system_prompt` and
    :meth:`task_ids`; everything else is shared.

    Args:
        max_turns: the episode is truncated after this many agent turns.
        split: the task split :meth:`reset` samples from (``train``, ``validation``, ``test``).
        reward_weights: weights per reward component, overriding :attr:`default_reward_weights`.
        invalid_action_penalty: the ``format`` component of a turn whose action was invalid is
            minus this value.
        max_action_chars: longer actions are rejected as invalid.
        max_observation_chars: longer observations are clipped.
        render_mode: ``"ansi"`` (return the last observation) or ``"human"`` (print it).
        action_mode: ``"text"`` (the agent writes a command) or ``"choice"``: every
            observation ends with the numbered admissible commands and the agent may answer
            with a number (other text is still read as a command). Offered by any env that
            lists its commands (:meth:`admissible_commands`); it lets a small model act
            validly from the first step, so RL has a signal to learn from.
    """

    # Gymnasium declares `metadata` as an instance attribute, so no ClassVar here.
    metadata: dict[str, Any] = {"render_modes": ["ansi", "human"], "render_fps": 4}  # noqa: RUF012

    #: Every key of ``info["reward_components"]``; each turn reports all of them.
    reward_component_names: ClassVar[tuple[str, ...]] = ("outcome", "format")
    #: The components that make up the episode's outcome reward (set on the final turn).
    outcome_components: ClassVar[tuple[str, ...]] = ("outcome",)
    #: Component weights of the turn reward, before ``reward_weights`` overrides.
    default_reward_weights: ClassVar[Mapping[str, float]] = {"outcome": 1.0, "format": 1.0}
    #: Named keyword presets (variants) for ``gym.make``, shown by ``rounds list``.
    variants: ClassVar[Mapping[str, Mapping[str, Any]]] = {}
    #: Info keys left out of recorded trajectories (large or derivable, e.g. command lists).
    unrecorded_info_keys: ClassVar[tuple[str, ...]] = ()
    #: Summary metrics computed from other metrics' means (``rounds.stats.DerivedMetric``).
    derived_metrics: ClassVar[Mapping[str, tuple[tuple[str, ...], Callable[..., float]]]] = {}
    #: Task splits :meth:`task_ids` understands.
    splits: ClassVar[tuple[str, ...]] = ("train", "validation", "test")
    #: Episode metrics (keys of ``info["metrics"]``) the replay shows in its list and summary.
    replay_metrics: ClassVar[tuple[str, ...]] = ()
    #: Per-turn numeric ``info`` keys the replay draws as a series (e.g. a posterior entropy).
    replay_series: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        *,
        max_turns: int,
        split: str = "train",
        reward_weights: Mapping[str, float] | None = None,
        invalid_action_penalty: float = 0.1,
        max_action_chars: int = 16_384,
        max_observation_chars: int = 65_536,
        render_mode: str | None = None,
        action_mode: str = "text",
    ) -> None:
        if max_turns < 1:
            raise ValueError(f"max_turns must be at least 1, got {max_turns}")
        if split not in self.splits:
            raise ValueError(f"unknown split {split!r}; choose one of {', '.join(self.splits)}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"unknown render_mode {render_mode!r}; choose one of {self.metadata['render_modes']}"
            )
        if action_mode not in ACTION_MODES:
            raise ValueError(
                f"unknown action_mode {action_mode!r}; choose one of {', '.join(ACTION_MODES)}"
            )
        if (
            action_mode == "choice"
            and type(self).admissible_commands is TextEnv.admissible_commands
        ):
            raise ValueError(
                f"{type(self).__name__} lists no admissible commands, so it has no choice "
                "action mode; use action_mode='text'"
            )
        unknown = set(reward_weights or {}) - set(self.reward_component_names)
        if unknown:
            raise ValueError(
                f"unknown reward components {sorted(unknown)}; this env emits "
                f"{list(self.reward_component_names)}"
            )
        self.max_turns = max_turns
        self.split = split
        self.reward_weights: dict[str, float] = {
            **self.default_reward_weights,
            **(reward_weights or {}),
        }
        self.invalid_action_penalty = invalid_action_penalty
        self.max_action_chars = max_action_chars
        self.render_mode = render_mode
        self.action_mode = action_mode
        #: The numbered commands of the last observation (choice mode).
        self.choices: list[str] = []
        self.max_observation_chars = max_observation_chars
        self.observation_space = TextSpace(max_observation_chars)
        self.action_space = TextSpace(max_action_chars)
        self.task_id: str | None = None
        self.turn = 0
        self._started = False
        self._done = False
        self._last_observation = ""

    @property
    def episode_ended(self) -> bool:
        """Whether the episode is over (terminated or truncated), so the next step needs a reset."""
        return self._done or not self._started

    def episode_meta(self) -> dict[str, Any]:
        """What a recorded episode keeps of this env, so it can be re-shaped and replayed
        without the env: the reward weights, the outcome components and what the replay shows."""
        return {
            "reward_weights": dict(self.reward_weights),
            "outcome_components": list(self.outcome_components),
            "replay_metrics": list(self.replay_metrics),
            "replay_series": list(self.replay_series),
        }

    # ------------------------------------------------------------------ the task

    @property
    @abstractmethod
    def system_prompt(self) -> str:
        """The task instructions an agent receives before the first observation."""

    @property
    def tools(self) -> list[dict[str, Any]]:
        """JSON-schema tool specs (OpenAI function format) the agent may call, or ``[]``."""
        return []

    @abstractmethod
    def task_ids(self, split: str | None = None) -> Sequence[str]:
        """The ids of the tasks in ``split`` (default: this env's split), in a fixed order."""

    def scripted_policies(self) -> dict[str, ScriptedPolicy]:
        """Named baseline policies (``expert``, ``random``, ...) that act from the true state."""
        return {}

    @abstractmethod
    def _begin(self, task_id: str, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """Start task ``task_id``; return the first observation and the reset info."""

    @abstractmethod
    def _act(self, text: str) -> StepResult:
        """Apply one cleaned, non-empty action; raise :class:`InvalidAction` to reject it."""

    @abstractmethod
    def _finish(self, terminated: bool) -> EpisodeEnd:
        """Score the episode on its last turn (``terminated`` False: the turn limit was hit)."""

    def _invalid_hint(self) -> str:
        """Text appended to every invalid-action observation, e.g. a few valid commands."""
        return ""

    def admissible_commands(self) -> list[str] | None:
        """Every valid command in the current state, or None where the env cannot list them
        (then it has no ``choice`` action mode)."""
        return None

    def choice_commands(self) -> list[str] | None:
        """The commands the choice action mode numbers: by default every admissible command;
        an env may list fewer (e.g. leave out commands that only show information), and a
        command it leaves out can still be written as text."""
        return self.admissible_commands()

    def present_action(self, command: str) -> str:
        """``command`` as an agent of this action mode writes it: its number in choice mode
        (when listed), else the command itself. Scripted baselines answer through it, so a
        policy cloned from them learns the action format the env offers."""
        if self.action_mode == "choice" and command in self.choices:
            return str(self.choices.index(command) + 1)
        return command

    def _list_choices(self, observation: str) -> str:
        """Choice mode: number the admissible commands under the observation."""
        if self.action_mode != "choice" or self._done:
            self.choices = []
            return observation
        self.choices = list(self.choice_commands() or [])
        listing = "\n".join(f"{n}. {c}" for n, c in enumerate(self.choices, start=1))
        return f"{observation}\n\nCommands:\n{listing}\nReply with the number of one command."

    def _chosen(self, text: str) -> str:
        """Choice mode: the command a reply's number selects (other text is a command)."""
        match = _NUMBER.fullmatch(text)
        if self.action_mode != "choice" or match is None:
            return text
        number = int(match.group(1))
        if not 1 <= number <= len(self.choices):
            raise InvalidAction(
                f"There is no command {number}; reply with a number from 1 to {len(self.choices)}."
            )
        return self.choices[number - 1]

    def _turn_info(self) -> dict[str, Any]:
        """Info entries every step returns (e.g. ``admissible_commands``)."""
        return {}

    def _truncation_message(self) -> str:
        return f"The turn limit ({self.max_turns}) is reached; the episode ends."

    # --------------------------------------------------------------- Gymnasium

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[str, dict[str, Any]]:
        """Start an episode: ``options={"task_id": ...}`` picks the task, else the seed does."""
        super().reset(seed=seed)
        options = dict(options or {})
        task_id = options.pop("task_id", None)
        if task_id is None:
            ids = self.task_ids(self.split)
            task_id = ids[int(self.np_random.integers(len(ids)))]
        task_id = str(task_id)
        observation, info = self._begin(task_id, options)
        self.task_id = task_id
        self.turn = 0
        self._started = True
        self._done = False
        observation = self._clip(self._list_choices(observation))
        self._last_observation = observation
        return observation, {"task_id": task_id, **info, **self._turn_info()}

    def step(self, action: str) -> tuple[str, SupportsFloat, bool, bool, dict[str, Any]]:
        """Act on the agent's raw text for one turn. Never raises on the action's content."""
        if not self._started:
            raise ResetNeeded("Call reset() before step().")
        if self._done:
            zeros = dict.fromkeys(self.reward_component_names, 0.0)
            message = "The episode has ended. Call reset() to start a new one."
            return message, 0.0, True, False, {"invalid_action": True, "reward_components": zeros}
        self.turn += 1
        try:
            result = self._act(self._chosen(clean_text(action, self.max_action_chars)))
        except InvalidAction as err:
            result = self.reject(str(err))
        components = dict.fromkeys(self.reward_component_names, 0.0)
        components.update(result.components)
        terminated = bool(result.terminated)
        truncated = not terminated and self.turn >= self.max_turns
        observation = result.observation
        info: dict[str, Any] = {**result.info, "invalid_action": result.invalid, "turn": self.turn}
        if terminated or truncated:
            self._done = True
            if truncated:
                observation = f"{observation}\n\n{self._truncation_message()}"
            end = self._finish(terminated)
            components.update(end.components)
            info["outcome"] = weighted_reward(
                {k: v for k, v in end.components.items() if k in self.outcome_components},
                self.reward_weights,
            )
            info["metrics"] = dict(end.metrics)
        info["reward_components"] = components
        info.update(self._turn_info())
        observation = self._clip(self._list_choices(observation))
        self._last_observation = observation
        reward = weighted_reward(components, self.reward_weights)
        if self.render_mode == "human":
            self.render()
        return observation, reward, terminated, truncated, info

    def reject(self, message: str) -> StepResult:
        """The result of an invalid action: the message with a hint, and the format penalty.
        In the choice action mode the numbered commands follow anyway, so no hint repeats them."""
        hint = self._invalid_hint() if self.action_mode != "choice" else ""
        text = f"{message}\n{hint}" if hint else message
        return StepResult(
            observation=text, components={"format": -self.invalid_action_penalty}, invalid=True
        )

    def render(self) -> str | None:
        """``ansi``: the last observation; ``human``: print it."""
        if self.render_mode == "ansi":
            return self._last_observation
        if self.render_mode == "human":
            print(self._last_observation)
        return None

    def _clip(self, observation: str) -> str:
        limit = self.max_observation_chars
        if len(observation) <= limit:
            return observation
        marker = "\n[... observation clipped ...]"
        return observation[: limit - len(marker)] + marker
