"""Episode recording: the one place a chat-loop episode becomes an :class:`~rounds.records.Episode`.

An episode starts from an env reset (:func:`start_episode`) or fails to start
(:func:`not_started`); each turn is recorded from the agent's action and the env
step's result (:func:`record_turn`), and the episode is closed with its outcome,
truncation and reason. Both starts build the record with :func:`new_episode`, which
takes what the env declares about itself from ``TextEnv.episode_meta()``.
"""

from __future__ import annotations

import concurrent.futures as cf
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from rounds.agents.base import Action, Agent, Chat
from rounds.agents.chat import append_turn
from rounds.agents.env_calls import StepOut, describe, seconds
from rounds.records import Episode, TokenUsage, Turn
from rounds.text_env import TextEnv

#: Info keys the record holds in their own fields, not in ``Turn.info``.
_INFO_IN_RECORD = ("reward_components", "outcome", "metrics")


@dataclass(frozen=True)
class EpisodeSpec:
    """Which episode to run: the task, the env's reset seed and the agent's sampling seed."""

    task_id: str | None = None
    seed: int | None = None
    agent_seed: int = 0
    meta: dict[str, Any] = field(default_factory=dict)
    """Copied into ``Episode.meta`` (e.g. the slot an evaluation planned, a GRPO group id)."""


@dataclass
class Rollout:
    """A finished episode: the record, and what the agent produced each turn."""

    episode: Episode
    actions: list[Action]
    messages: list[dict[str, Any]]


@dataclass
class LiveEpisode:
    """An episode in progress: its env, the agent's view of it, and the record so far."""

    spec: EpisodeSpec
    env: gym.Env[str, str]
    chat: Chat
    episode: Episode
    observation: str
    actions: list[Action] = field(default_factory=list)


def unwrap_text_env(env: gym.Env[Any, Any]) -> TextEnv:
    """The `rounds` env under ``env``'s wrappers.

    Raises:
        TypeError: ``env`` is not a `rounds` text env (the chat loop needs its system
            prompt, tools and task ids).
    """
    base = env.unwrapped
    if not isinstance(base, TextEnv):
        raise TypeError(
            f"{type(base).__name__} is not a rounds TextEnv; the chat loop runs envs built on "
            "rounds.text_env.TextEnv"
        )
    return base


def recorded_info(info: dict[str, Any], env: TextEnv) -> dict[str, Any]:
    """The info entries a turn record keeps (not those with fields of their own, nor the env's
    unrecorded keys)."""
    skip = set(_INFO_IN_RECORD) | set(env.unrecorded_info_keys)
    return {k: v for k, v in info.items() if k not in skip}


def new_episode(
    spec: EpisodeSpec,
    env_id: str,
    agent: Agent,
    *,
    env: TextEnv | None = None,
    reset_info: dict[str, Any] | None = None,
    truncation_reason: str | None = None,
) -> Episode:
    """The record of a new episode: without ``env`` one that never started (truncated, with the
    reason), else one reset with ``reset_info``."""
    meta: dict[str, Any] = {**spec.meta, "agent_seed": spec.agent_seed}
    if env is not None:
        meta["reset_info"] = recorded_info(reset_info or {}, env)
        meta.update(env.episode_meta())
    if truncation_reason is not None:
        meta["truncation_reason"] = truncation_reason
    return Episode(
        env_id=env_id,
        task_id=env.task_id if env is not None else spec.task_id,
        seed=spec.seed,
        agent=agent.name,
        model=agent.model,
        truncated=truncation_reason is not None,
        meta=meta,
    )


def start_episode(
    spec: EpisodeSpec, env: gym.Env[str, str], env_id: str, agent: Agent
) -> LiveEpisode:
    """Reset ``env`` for ``spec`` and open the conversation: the env's system prompt, then its
    first observation."""
    observation, info = env.reset(
        seed=spec.seed, options={"task_id": spec.task_id} if spec.task_id else None
    )
    base = unwrap_text_env(env)
    chat = Chat(
        messages=[
            {"role": "system", "content": base.system_prompt},
            {"role": "user", "content": observation},
        ],
        tools=base.tools,
        env=base,
        rng=np.random.default_rng(spec.agent_seed),
        info=info,
    )
    episode = new_episode(spec, env_id, agent, env=base, reset_info=info)
    return LiveEpisode(spec=spec, env=env, chat=chat, episode=episode, observation=observation)


def not_started(spec: EpisodeSpec, env_id: str, agent: Agent, reason: str) -> Rollout:
    """The rollout of an episode whose env could not be made or reset: no turns, truncated."""
    episode = new_episode(spec, env_id, agent, truncation_reason=reason)
    return Rollout(episode=episode, actions=[], messages=[])


def _close(
    live: LiveEpisode, *, truncated: bool, reason: str | None, final_observation: str
) -> Rollout:
    episode = live.episode
    episode.truncated = truncated
    episode.total_reward = float(sum(t.reward for t in episode.turns))
    episode.meta["final_observation"] = final_observation
    if reason is not None:
        episode.meta["truncation_reason"] = reason
    return Rollout(episode=episode, actions=live.actions, messages=live.chat.messages)


def record_turn(
    live: LiveEpisode,
    action: Action,
    future: cf.Future[StepOut] | None,
    step_timeout_s: float | None,
) -> tuple[Rollout, bool] | None:
    """Record one turn; return the finished rollout (and whether its env is reusable), or None
    while the episode goes on.

    ``future`` is the env step's call, done or past its deadline (then the turn is recorded
    as timed out), or None when the agent ended the episode or failed.
    """
    agent_info = {
        key: value
        for key, value in (
            ("finish_reason", action.finish_reason),
            ("context_reset", action.context_reset or None),
        )
        if value is not None
    }
    turn: dict[str, Any] = {
        "index": len(live.episode.turns),
        "observation": live.observation,
        "action": action.text,
        "latency_s": action.latency_s,
        "tokens": TokenUsage(prompt=action.prompt_tokens, completion=action.completion_tokens),
    }
    reason: str | None = None
    if future is None:
        reason = action.end_reason if action.error is None else f"agent error: {action.error}"
    elif not future.done():
        reason = f"env step timed out after {seconds(step_timeout_s)}"
    else:
        try:
            observation, reward, terminated, truncated, info, elapsed = future.result()
        except Exception as err:  # an env bug must not take down a whole run
            reason = "env error: " + describe(err)
    if reason is not None:
        live.episode.turns.append(Turn(**turn))
        env_ok = future is None
        return _close(
            live, truncated=True, reason=reason, final_observation=live.observation
        ), env_ok
    live.episode.turns.append(
        Turn(
            **turn,
            reward=reward,
            reward_components={k: float(v) for k, v in info.get("reward_components", {}).items()},
            info={
                **recorded_info(info, live.chat.env),
                "env_latency_s": elapsed,
                **({"agent": agent_info} if agent_info else {}),
            },
        )
    )
    append_turn(live.chat.messages, action, observation)
    live.chat.info = info
    live.observation = observation
    if terminated or truncated:
        live.episode.outcome = float(info.get("outcome", 0.0))
        live.episode.metrics = {k: float(v) for k, v in info.get("metrics", {}).items()}
        return _close(live, truncated=truncated, reason=None, final_observation=observation), True
    return None
