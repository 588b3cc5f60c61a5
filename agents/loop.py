"""The one chat loop: any env becomes a conversation, many episodes at once.

The system prompt and tools come from the env, observations become user
messages (tool messages after a tool call) and actions assistant messages.
:func:`run_episodes` picks the scheduler for the agent (``Agent.batched``): a
batched agent (a local model) drives live episodes in rounds of one ``act_batch``
call; any other agent runs each episode on its own worker. Either way env calls run
in a thread pool with a timeout, so a slow or hung env cannot stall the rest. Every
finished episode is yielded as a :class:`Rollout` holding the
:class:`~rounds.records.Episode` record and the agent's raw actions (with token ids
and log-probs for model agents).

The parts live apart: :mod:`rounds.agents.env_calls` (pool, timeouts),
:mod:`rounds.agents.recording` (the one place that builds an ``Episode``) and
:mod:`rounds.agents.schedulers` (lockstep and independent).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import gymnasium as gym

from rounds.agents.base import Agent
from rounds.agents.recording import EpisodeSpec, Rollout
from rounds.agents.schedulers import run_independent, run_lockstep

__all__ = ["EpisodeSpec", "Rollout", "run_episodes"]


def run_episodes(
    make_env: Callable[[], gym.Env[str, str]],
    agent: Agent,
    specs: Iterable[EpisodeSpec],
    *,
    env_id: str,
    concurrency: int = 1,
    step_timeout_s: float | None = 60.0,
    straggler_s: float | None = 1.0,
) -> Iterator[Rollout]:
    """Run every episode of ``specs`` with ``agent``, ``concurrency`` at a time.

    Args:
        make_env: builds one env (called once per concurrent slot, and again after an
            env failed or timed out, since it may be left in a bad state).
        agent: the agent; a batched one (``agent.batched``) gets one ``act_batch`` call
            per round.
        specs: the episodes to run, in order.
        env_id: recorded in each episode.
        concurrency: how many episodes are live at once.
        step_timeout_s: an env call slower than this truncates its episode with the reason.
        straggler_s: (batched agents) how long a round waits for its env steps before
            generating for the episodes that are ready; a slower step keeps running and
            its episode rejoins a later round. Envs faster than this always make full
            batches, so sampling stays reproducible; ``None`` always waits for every step.

    Yields:
        Each episode as it finishes (not necessarily in ``specs`` order).
    """
    if agent.batched:
        yield from run_lockstep(
            make_env, agent, specs, env_id, max(1, concurrency), step_timeout_s, straggler_s
        )
    else:
        yield from run_independent(
            make_env, agent, specs, env_id, max(1, concurrency), step_timeout_s
        )
