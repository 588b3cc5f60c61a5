"""The chat loop's schedulers: which episodes act when.

- :func:`run_lockstep` (batched agents, a local model): each round asks the agent for
  the actions of every episode that is ready in one ``act_batch`` call, so generation
  is batched; an episode whose env step is slower than the straggler wait sits out
  rounds until the step returns, so a slow env does not stall the others.
- :func:`run_independent` (any other agent: an API client, a scripted baseline): each
  episode runs on its own worker, so a slow reply holds up no other episode.

Both run env calls through :mod:`rounds.agents.env_calls` and record episodes with
:mod:`rounds.agents.recording`.
"""

from __future__ import annotations

import concurrent.futures as cf
import itertools
import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym

from rounds.agents.base import Action, Agent
from rounds.agents.env_calls import EnvCalls, Opening, describe, discard, seconds, step_env
from rounds.agents.recording import (
    EpisodeSpec,
    LiveEpisode,
    Rollout,
    not_started,
    record_turn,
    start_episode,
)


def _open(
    make_env: Callable[[], gym.Env[str, str]],
    env: gym.Env[str, str] | None,
    spec: EpisodeSpec,
    env_id: str,
    agent: Agent,
    opening: Opening,
) -> LiveEpisode:
    """Make the env if needed and reset it for ``spec``."""
    kept = opening.keep(env if env is not None else make_env())
    return start_episode(spec, kept, env_id, agent)


def _opened(
    future: cf.Future[LiveEpisode],
    opening: Opening,
    spec: EpisodeSpec,
    env_id: str,
    agent: Agent,
    timeout_s: float | None,
) -> LiveEpisode | Rollout:
    """The live episode of a finished (or overdue) ``_open`` call, or the record of its failure."""
    if not future.done():
        reason = f"env reset timed out after {seconds(timeout_s)}"
    else:
        try:
            return future.result()
        except Exception as err:  # an env that cannot start ends its episode, not the run
            reason = "env reset error: " + describe(err)
    opening.abandon()
    return not_started(spec, env_id, agent, reason)


def end_agent_state(live: LiveEpisode) -> None:
    """Drop what the agent kept for a finished episode (``chat.state``: its token sequence, a
    model's KV cache), so a long run holds memory only for its live episodes."""
    live.chat.state.clear()


@dataclass
class _InFlight:
    """An env call running in the pool for one slot: a reset (``action`` None) or a step."""

    future: cf.Future[Any]
    deadline: float
    spec: EpisodeSpec
    action: Action | None = None
    opening: Opening = field(default_factory=Opening)


def run_lockstep(
    make_env: Callable[[], gym.Env[str, str]],
    agent: Agent,
    specs: Iterable[EpisodeSpec],
    env_id: str,
    concurrency: int,
    step_timeout_s: float | None,
    straggler_s: float | None,
) -> Iterator[Rollout]:
    """Drive a batched agent: one ``act_batch`` call per round for every ready episode,
    ``concurrency`` episodes live at once (see ``run_episodes`` for the arguments)."""
    pending = iter(specs)
    exhausted = False
    slots: list[LiveEpisode | None] = [None] * concurrency
    envs: list[gym.Env[str, str] | None] = [None] * concurrency
    flying: dict[int, _InFlight] = {}
    calls = EnvCalls(concurrency)
    limit = step_timeout_s if step_timeout_s is not None else math.inf

    def release(i: int, rollout: Rollout, env_ok: bool) -> Rollout:
        if not env_ok:
            discard(envs[i])
            envs[i] = None  # a failed or hung env is not reused
        live = slots[i]
        if live is not None:
            end_agent_state(live)
        slots[i] = None
        return rollout

    submitted: list[cf.Future[Any]] = []  # this round's calls (and an unwaited round's)
    try:
        while True:
            for i in range(concurrency):
                if exhausted or slots[i] is not None or i in flying:
                    continue
                spec = next(pending, None)
                if spec is None:
                    exhausted = True
                    continue
                opening = Opening()
                future = calls.submit(_open, make_env, envs[i], spec, env_id, agent, opening)
                flying[i] = _InFlight(future, time.monotonic() + limit, spec, opening=opening)
                submitted.append(future)
            ready = {
                i: live for i, live in enumerate(slots) if live is not None and i not in flying
            }
            if not ready and not flying:
                return
            freed = False
            if ready:
                chats = [live.chat for live in ready.values()]
                try:
                    actions = agent.act_batch(chats)
                except Exception as err:  # an agent bug ends these episodes, not the run
                    actions = [Action(text="", error=describe(err)) for _ in chats]
                if len(actions) != len(chats):
                    raise RuntimeError(
                        f"{type(agent).__name__}.act_batch returned {len(actions)} actions for {len(chats)} chats"
                    )
                deadline = time.monotonic() + limit
                for i, action in zip(ready, actions, strict=True):
                    live = slots[i]
                    assert live is not None
                    live.actions.append(action)
                    if action.error is None and action.end_reason is None:
                        future = calls.submit(step_env, live.env, action.text)
                        flying[i] = _InFlight(future, deadline, live.spec, action=action)
                        submitted.append(future)
                    else:
                        finished = record_turn(live, action, None, step_timeout_s)
                        assert finished is not None
                        freed = True
                        yield release(i, *finished)
            if freed and not exhausted:
                continue  # start the next episodes before waiting on env calls
            _wait_for_calls(flying, submitted, straggler_s)
            submitted = []
            now = time.monotonic()
            for i, flight in sorted(flying.items()):
                if not flight.future.done() and now < flight.deadline:
                    continue
                del flying[i]
                if not flight.future.done():
                    calls.abandon_hung()
                if flight.action is None:
                    opened = _opened(
                        flight.future, flight.opening, flight.spec, env_id, agent, step_timeout_s
                    )
                    if isinstance(opened, Rollout):
                        envs[i] = None
                        yield opened
                    else:
                        slots[i], envs[i] = opened, opened.env
                    continue
                live = slots[i]
                assert live is not None
                finished = record_turn(live, flight.action, flight.future, step_timeout_s)
                if finished is not None:
                    yield release(i, *finished)
    finally:
        calls.shutdown()
        for env in envs:
            if env is not None:
                env.close()


def _wait_for_calls(
    flying: dict[int, _InFlight],
    submitted: list[cf.Future[Any]],
    straggler_s: float | None,
) -> None:
    """Block until this round's env calls are done (at most ``straggler_s``), or, when none was
    submitted this round, until any running call finishes or reaches its deadline."""
    if not flying:
        return
    deadline = min(flight.deadline for flight in flying.values())
    left = max(0.0, deadline - time.monotonic()) if math.isfinite(deadline) else None
    if submitted:
        wait = left if straggler_s is None else min(straggler_s, math.inf if left is None else left)
        cf.wait(submitted, timeout=wait, return_when=cf.ALL_COMPLETED)
    else:
        futures = [flight.future for flight in flying.values()]
        cf.wait(futures, timeout=left, return_when=cf.FIRST_COMPLETED)


def run_independent(
    make_env: Callable[[], gym.Env[str, str]],
    agent: Agent,
    specs: Iterable[EpisodeSpec],
    env_id: str,
    concurrency: int,
    step_timeout_s: float | None,
) -> Iterator[Rollout]:
    """Run each episode on its own worker, ``concurrency`` at a time (see ``run_episodes``)."""
    idle: list[gym.Env[str, str]] = []
    opened_envs: set[gym.Env[str, str]] = set()  # closed at the end, unless discarded before
    lock = threading.Lock()
    calls = EnvCalls(concurrency)

    def episode(spec: EpisodeSpec) -> Rollout:
        with lock:
            reuse = idle.pop() if idle else None
        opening = Opening()
        call = calls.submit(_open, make_env, reuse, spec, env_id, agent, opening)
        cf.wait([call], timeout=step_timeout_s)
        if not call.done():
            calls.abandon_hung()
        opened = _opened(call, opening, spec, env_id, agent, step_timeout_s)
        if isinstance(opened, Rollout):
            if reuse is not None:
                with lock:
                    opened_envs.discard(reuse)
            return opened
        live = opened
        with lock:
            opened_envs.add(live.env)
        while True:
            try:
                action = agent.act(live.chat)
            except Exception as err:  # an agent bug ends this episode, not the run
                action = Action(text="", error=describe(err))
            live.actions.append(action)
            acting = action.error is None and action.end_reason is None
            future = calls.submit(step_env, live.env, action.text) if acting else None
            if future is not None:
                cf.wait([future], timeout=step_timeout_s)
                if not future.done():
                    calls.abandon_hung()
            finished = record_turn(live, action, future, step_timeout_s)
            if finished is not None:
                end_agent_state(live)
                rollout, env_ok = finished
                if env_ok:
                    with lock:
                        idle.append(live.env)
                else:
                    with lock:
                        opened_envs.discard(live.env)
                    discard(live.env)
                return rollout

    workers = cf.ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="rounds-episode")
    pending = iter(specs)
    running: set[cf.Future[Rollout]] = set()
    try:
        for spec in itertools.islice(pending, 2 * concurrency):
            running.add(workers.submit(episode, spec))
        while running:
            done, running = cf.wait(running, return_when=cf.FIRST_COMPLETED)
            for future in done:
                for spec in itertools.islice(pending, 1):
                    running.add(workers.submit(episode, spec))
                yield future.result()
    finally:
        workers.shutdown(wait=False, cancel_futures=True)
        calls.shutdown()
        with lock:
            for env in opened_envs:
                env.close()
