"""The one chat loop: any env becomes a conversation, many episodes at once.

The system prompt and tools come from the env, observations become user
messages (tool messages after a tool call) and actions assistant messages.
A batched agent (a local model) drives live episodes in rounds: each round
asks it for the actions of every episode that is ready in one ``act_batch``
call, so generation is batched; an episode whose env step is slower than the
straggler wait sits out rounds until the step returns, so a slow env (a docker
sandbox) does not stall generation for the others. Any other agent (an API client, a scripted baseline) runs each episode
on its own worker, so a slow reply holds up no other episode. Either way env
steps run in a thread pool with a timeout, so a slow or hung env cannot stall
the rest. Every finished episode is yielded as a :class:`Rollout` holding the
:class:`~rounds.records.Episode` record and the agent's raw actions (with token
ids and log-probs for model agents).
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import itertools
import math
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from rounds.agents.base import Action, Agent, Chat
from rounds.agents.chat import append_turn
from rounds.records import Episode, TokenUsage, Turn
from rounds.text_env import TextEnv

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
class _Live:
    spec: EpisodeSpec
    env: gym.Env[str, str]
    chat: Chat
    episode: Episode
    observation: str
    actions: list[Action] = field(default_factory=list)


def _recorded(info: dict[str, Any], env: TextEnv) -> dict[str, Any]:
    skip = set(_INFO_IN_RECORD) | set(env.unrecorded_info_keys)
    return {k: v for k, v in info.items() if k not in skip}


def _start(spec: EpisodeSpec, env: gym.Env[str, str], env_id: str, agent: Agent) -> _Live:
    observation, info = env.reset(
        seed=spec.seed, options={"task_id": spec.task_id} if spec.task_id else None
    )
    base: TextEnv = env.unwrapped  # type: ignore[assignment]
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": base.system_prompt},
        {"role": "user", "content": observation},
    ]
    chat = Chat(
        messages=messages,
        tools=base.tools,
        env=base,
        rng=np.random.default_rng(spec.agent_seed),
        info=info,
    )
    episode = Episode(
        env_id=env_id,
        task_id=base.task_id,
        seed=spec.seed,
        agent=agent.name,
        model=agent.model,
        meta={
            **spec.meta,
            "agent_seed": spec.agent_seed,
            "reset_info": _recorded(info, base),
            **base.episode_meta(),
        },
    )
    return _Live(spec=spec, env=env, chat=chat, episode=episode, observation=observation)


_StepOut = tuple[str, float, bool, bool, dict[str, Any], float]


def _step(env: gym.Env[str, str], text: str) -> _StepOut:
    started = time.perf_counter()
    observation, reward, terminated, truncated, info = env.step(text)
    return (
        observation,
        float(reward),
        bool(terminated),
        bool(truncated),
        info,
        time.perf_counter() - started,
    )


def _close(live: _Live, *, truncated: bool, reason: str | None, final_observation: str) -> Rollout:
    episode = live.episode
    episode.truncated = truncated
    episode.total_reward = float(sum(t.reward for t in episode.turns))
    episode.meta["final_observation"] = final_observation
    if reason is not None:
        episode.meta["truncation_reason"] = reason
    return Rollout(episode=episode, actions=live.actions, messages=live.chat.messages)


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
        agent: the agent; a batched one gets one ``act_batch`` call per round.
        specs: the episodes to run, in order.
        env_id: recorded in each episode.
        concurrency: how many episodes are live at once.
        step_timeout_s: an env step slower than this truncates its episode with the reason.
        straggler_s: (batched agents) how long a round waits for its env steps before
            generating for the episodes that are ready; a slower step keeps running and
            its episode rejoins a later round. Envs faster than this always make full
            batches, so sampling stays reproducible; ``None`` always waits for every step.

    Yields:
        Each episode as it finishes (not necessarily in ``specs`` order).
    """
    if getattr(agent, "batched", False):
        yield from _run_lockstep(
            make_env, agent, specs, env_id, max(1, concurrency), step_timeout_s, straggler_s
        )
    else:
        yield from _run_independent(
            make_env, agent, specs, env_id, max(1, concurrency), step_timeout_s
        )


class _EnvCalls:
    """The thread pool env calls run in.

    A call past its deadline cannot be stopped and keeps its thread, so instead of
    leaving the pool a worker short (later calls would queue behind the hung one and
    time out in turn) the pool is replaced: the old one finishes what it holds and exits.
    """

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._lock = threading.Lock()
        self._pool = self._new()

    def _new(self) -> cf.ThreadPoolExecutor:
        return cf.ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="rounds-env")

    def submit(self, fn: Callable[..., Any], *args: Any) -> cf.Future[Any]:
        with self._lock:
            return self._pool.submit(fn, *args)

    def abandon_hung(self) -> None:
        with self._lock:
            self._pool.shutdown(wait=False)
            self._pool = self._new()

    def shutdown(self) -> None:
        with self._lock:
            self._pool.shutdown(wait=False, cancel_futures=True)


def _discard(env: gym.Env[str, str] | None) -> None:
    """Close an env that failed or hung, without waiting for it (it may never return)."""

    def close() -> None:
        with contextlib.suppress(Exception):
            env.close()  # type: ignore[union-attr]

    if env is not None:
        threading.Thread(target=close, name="rounds-env-close", daemon=True).start()


class _Opening:
    """The env an ``_open`` call is making, shared with the caller that may stop waiting.

    Whoever comes second closes the env: the caller when it gives up after the env was
    made, or ``_open`` when the env arrives after the caller gave up (a slow
    ``make_env``, e.g. a sandbox that took too long to start, would otherwise leak).
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.env: gym.Env[str, str] | None = None
        self.abandoned = False

    def keep(self, env: gym.Env[str, str]) -> None:
        with self.lock:
            self.env = env
            if not self.abandoned:
                return
        _discard(env)
        raise RuntimeError("abandoned after the timeout")

    def abandon(self) -> None:
        with self.lock:
            self.abandoned = True
            env = self.env
        _discard(env)


def _open(
    make_env: Callable[[], gym.Env[str, str]],
    env: gym.Env[str, str] | None,
    spec: EpisodeSpec,
    env_id: str,
    agent: Agent,
    opening: _Opening,
) -> _Live:
    """Make the env if needed and reset it for ``spec``."""
    opening.keep(env if env is not None else make_env())
    assert opening.env is not None
    return _start(spec, opening.env, env_id, agent)


def _not_started(spec: EpisodeSpec, env_id: str, agent: Agent, reason: str) -> Rollout:
    """The record of an episode whose env could not be made or reset: no turns, truncated."""
    episode = Episode(
        env_id=env_id,
        task_id=spec.task_id,
        seed=spec.seed,
        agent=agent.name,
        model=agent.model,
        truncated=True,
        meta={**spec.meta, "agent_seed": spec.agent_seed, "truncation_reason": reason},
    )
    return Rollout(episode=episode, actions=[], messages=[])


def _seconds(timeout_s: float | None) -> str:
    return "no limit" if timeout_s is None else f"{timeout_s:g}s"


def _opened(
    future: cf.Future[_Live],
    opening: _Opening,
    spec: EpisodeSpec,
    env_id: str,
    agent: Agent,
    timeout_s: float | None,
) -> _Live | Rollout:
    """The live episode of a finished (or overdue) ``_open`` call, or the record of its failure."""
    if not future.done():
        reason = f"env reset timed out after {_seconds(timeout_s)}"
    else:
        try:
            return future.result()
        except Exception as err:  # an env that cannot start ends its episode, not the run
            reason = "env reset error: " + _describe(err)
    opening.abandon()
    return _not_started(spec, env_id, agent, reason)


@dataclass
class _InFlight:
    """An env call running in the pool for one slot: a reset (``action`` None) or a step."""

    future: cf.Future[Any]
    deadline: float
    spec: EpisodeSpec
    action: Action | None = None
    opening: _Opening = field(default_factory=_Opening)


def _run_lockstep(
    make_env: Callable[[], gym.Env[str, str]],
    agent: Agent,
    specs: Iterable[EpisodeSpec],
    env_id: str,
    concurrency: int,
    step_timeout_s: float | None,
    straggler_s: float | None,
) -> Iterator[Rollout]:
    pending = iter(specs)
    exhausted = False
    slots: list[_Live | None] = [None] * concurrency
    envs: list[gym.Env[str, str] | None] = [None] * concurrency
    flying: dict[int, _InFlight] = {}
    calls = _EnvCalls(concurrency)
    limit = step_timeout_s if step_timeout_s is not None else math.inf

    def release(i: int, rollout: Rollout, env_ok: bool) -> Rollout:
        if not env_ok:
            _discard(envs[i])
            envs[i] = None  # a failed or hung env is not reused
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
                opening = _Opening()
                future = calls.submit(_open, make_env, envs[i], spec, env_id, agent, opening)
                flying[i] = _InFlight(future, time.monotonic() + limit, spec, opening=opening)
                submitted.append(future)
            ready = [i for i, live in enumerate(slots) if live is not None and i not in flying]
            if not ready and not flying:
                return
            freed = False
            if ready:
                chats = [slots[i].chat for i in ready]  # type: ignore[union-attr]
                try:
                    actions = agent.act_batch(chats)
                except Exception as err:  # an agent bug ends these episodes, not the run
                    actions = [Action(text="", error=_describe(err)) for _ in chats]
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
                        future = calls.submit(_step, live.env, action.text)
                        flying[i] = _InFlight(future, deadline, live.spec, action=action)
                        submitted.append(future)
                    else:
                        finished = _advance(live, action, None, step_timeout_s)
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
                finished = _advance(live, flight.action, flight.future, step_timeout_s)
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


def _run_independent(
    make_env: Callable[[], gym.Env[str, str]],
    agent: Agent,
    specs: Iterable[EpisodeSpec],
    env_id: str,
    concurrency: int,
    step_timeout_s: float | None,
) -> Iterator[Rollout]:
    idle: list[gym.Env[str, str]] = []
    opened_envs: set[gym.Env[str, str]] = set()  # closed at the end, unless discarded before
    lock = threading.Lock()
    calls = _EnvCalls(concurrency)

    def episode(spec: EpisodeSpec) -> Rollout:
        with lock:
            reuse = idle.pop() if idle else None
        opening = _Opening()
        call = calls.submit(_open, make_env, reuse, spec, env_id, agent, opening)
        cf.wait([call], timeout=step_timeout_s)
        if not call.done():
            calls.abandon_hung()
        opened = _opened(call, opening, spec, env_id, agent, step_timeout_s)
        if isinstance(opened, Rollout):
            with lock:
                opened_envs.discard(reuse)  # type: ignore[arg-type]
            return opened
        live = opened
        with lock:
            opened_envs.add(live.env)
        while True:
            try:
                action = agent.act(live.chat)
            except Exception as err:  # an agent bug ends this episode, not the run
                action = Action(text="", error=_describe(err))
            live.actions.append(action)
            acting = action.error is None and action.end_reason is None
            future = calls.submit(_step, live.env, action.text) if acting else None
            if future is not None:
                cf.wait([future], timeout=step_timeout_s)
                if not future.done():
                    calls.abandon_hung()
            finished = _advance(live, action, future, step_timeout_s)
            if finished is not None:
                rollout, env_ok = finished
                if env_ok:
                    with lock:
                        idle.append(live.env)
                else:
                    with lock:
                        opened_envs.discard(live.env)
                    _discard(live.env)
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


def _describe(err: BaseException) -> str:
    return "".join(traceback.format_exception_only(err)).strip()


def _advance(
    live: _Live,
    action: Action,
    future: cf.Future[_StepOut] | None,
    step_timeout_s: float | None,
) -> tuple[Rollout, bool] | None:
    """Record one turn; return the finished rollout (and whether its env is reusable).

    ``future`` is done, or past its deadline (then the turn is recorded as timed out).
    """
    agent_info = {
        key: value
        for key, value in (
            ("finish_reason", action.finish_reason),
            ("context_reset", action.context_reset or None),
        )
        if value is not None
    }
    turn = {
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
        reason = f"env step timed out after {_seconds(step_timeout_s)}"
    else:
        try:
            observation, reward, terminated, truncated, info, elapsed = future.result()
        except Exception as err:  # an env bug must not take down a whole run
            reason = "env error: " + _describe(err)
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
                **_recorded(info, live.chat.env),
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
