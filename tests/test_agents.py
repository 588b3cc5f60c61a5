"""Agents and the chat loop: token sequences, batching, API failures, bad outputs."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Sequence
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import pytest
import torch
from fake_openai import chat_body, fake_openai_server

import rounds
from rounds.agents import Action, BaseAgent, Chat, EpisodeSpec, make_agent, run_episodes
from rounds.agents.chat import TRUNCATION_MARKER, append_turn, fit_messages, tool_calls_in_text
from rounds.agents.hf import HFAgent
from rounds.agents.openai_agent import OpenAIAgent
from rounds.models import sampling
from rounds.models.decoding import decode
from rounds.text_env import EpisodeEnd, StepResult, TextEnv


@pytest.fixture(scope="module")
def hf_agent() -> HFAgent:
    return HFAgent("tiny", max_new_tokens=12, seed=0)


def diaggym() -> gym.Env:
    return gym.make("rounds/DiagGym-v0", split="test")


def run(agent: BaseAgent, env_id: str, n: int, concurrency: int = 2, **env_kwargs: Any) -> list:
    specs = [EpisodeSpec(task_id=None, seed=i, agent_seed=i) for i in range(n)]
    return list(
        run_episodes(
            lambda: gym.make(env_id, **env_kwargs),
            agent,
            specs,
            env_id=env_id,
            concurrency=concurrency,
        )
    )


# ------------------------------------------------------------------ chat helpers


def test_fit_messages_keeps_system_and_cuts_oldest_observations_first() -> None:
    messages = [
        {"role": "system", "content": "S" * 400},
        {"role": "user", "content": "task " * 100},
        {"role": "assistant", "content": "a1"},
        {"role": "user", "content": "obs1 " * 100},
        {"role": "assistant", "content": "a2"},
        {"role": "user", "content": "obs2 " * 100},
        {"role": "assistant", "content": "a3"},
        {"role": "user", "content": "latest " * 50},
    ]
    count = lambda m: len(str(m["content"]))  # noqa: E731
    fitted = fit_messages(messages, 1400, count=count)  # fits once obs1 and obs2 are cut
    assert fitted[0] == messages[0]
    assert fitted[3]["content"] == TRUNCATION_MARKER  # oldest observation first
    assert fitted[5]["content"] == TRUNCATION_MARKER
    assert fitted[1] == messages[1] and fitted[7] == messages[7]  # the task and the latest stay
    tight = fit_messages(messages, 700, count=count)
    assert tight[0] == messages[0] and tight[1]["content"] == TRUNCATION_MARKER
    assert sum(count(m) for m in tight) == 700  # the latest observation keeps the tail that fits
    assert tight[7]["content"].startswith(TRUNCATION_MARKER) and tight[7]["content"].endswith(
        "latest "
    )
    assert messages[3]["content"].startswith("obs1")  # the input is not modified


def test_tool_calls_in_text_and_tool_messages() -> None:
    text = 'thinking <tool_call>{"name": "order_exam", "arguments": {"exam": "CBC"}}</tool_call>'
    calls = tool_calls_in_text(text)
    assert calls[0]["function"]["name"] == "order_exam"
    assert json.loads(calls[0]["function"]["arguments"]) == {"exam": "CBC"}
    assert tool_calls_in_text("<tool_call>{broken</tool_call>") == []
    messages: list[dict[str, Any]] = []
    append_turn(messages, Action(text=text, tool_calls=calls), "Exam results: ...")
    assert messages[0]["role"] == "assistant" and messages[0]["content"] == "thinking"
    assert messages[1] == {
        "role": "tool",
        "tool_call_id": calls[0]["id"],
        "content": "Exam results: ...",
    }


# ------------------------------------------------------------------ hf agent


def test_hf_episode_token_sequence_is_exactly_what_was_sampled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    agent = HFAgent("tiny", max_new_tokens=12, seed=0)
    calls: list[tuple[list[int], list[int]]] = []  # (the unpadded prompt, the sampled tokens)

    def recording_decode(
        lm: Any, input_ids: Any, attention_mask: Any, settings: Any, **kwargs: Any
    ) -> Any:
        out = decode(lm, input_ids, attention_mask, settings, **kwargs)
        for row in range(input_ids.shape[0]):
            fed = input_ids[row][attention_mask[row].bool()].tolist()
            calls.append((fed, out.tokens[row].tolist()))
        return out

    monkeypatch.setattr(sampling, "decode", recording_decode)
    env = diaggym()
    spec = EpisodeSpec(task_id="rounds-test-0002", seed=0, agent_seed=0)
    rollout = next(run_episodes(lambda: env, agent, [spec], env_id="rounds/DiagGym-v0"))
    tokenizer = agent.tokenizer
    acted = [a for a in rollout.actions if a.token_ids]
    assert len(acted) >= 3 and len(calls) == len(acted)
    sequence: list[int] = []
    drift = 0
    for action, (fed, generated) in zip(acted, calls, strict=True):
        assert action.prompt_ids and action.token_ids and action.logprobs
        assert len(action.logprobs) == len(action.token_ids) == len(action.sampled_mask)
        # The model saw exactly the episode's sequence so far plus this turn's prompt tokens...
        sequence += action.prompt_ids
        assert fed == sequence
        # ...and the recorded completion is exactly what it sampled (up to its stop token).
        sampled = [t for t, m in zip(action.token_ids, action.sampled_mask, strict=True) if m]
        assert sampled == generated[: len(sampled)]
        sequence += action.token_ids
        retokenized = tokenizer(
            tokenizer.decode(action.token_ids), add_special_tokens=False
        ).input_ids
        drift += retokenized != action.token_ids
    assert drift > 0, (
        "sampled tokens of a random tiny model are usually not the canonical tokenization"
    )
    # The sequence decodes to the conversation as the chat template renders it.
    turns = 3
    decoded = tokenizer.decode(
        [t for a in acted[:turns] for t in (a.prompt_ids or []) + (a.token_ids or [])]
    )
    messages = rollout.messages[: 1 + 2 * turns]  # system, then (observation, reply) x 3
    rendered = tokenizer.apply_chat_template(messages, tools=env.unwrapped.tools, tokenize=False)
    assert rendered == decoded + "\n"


def test_hf_logprobs_match_a_teacher_forced_forward_pass(hf_agent: HFAgent) -> None:
    env = diaggym()
    env.reset(seed=1)
    chat = Chat(
        messages=[
            {"role": "system", "content": "s"},
            {"role": "user", "content": "Patient with fever."},
        ],
        tools=[],
        env=env.unwrapped,
        rng=np.random.default_rng(0),
    )
    other = Chat(
        messages=[{"role": "user", "content": "short"}],
        tools=[],
        env=env.unwrapped,
        rng=np.random.default_rng(1),
    )
    actions = hf_agent.act_batch([chat, other])
    for action in actions:
        sampled = [t for t, m in zip(action.token_ids, action.sampled_mask, strict=True) if m]
        ids = torch.tensor([action.prompt_ids + sampled])
        with torch.no_grad():
            logits = hf_agent.lm(ids).logits[0, len(action.prompt_ids) - 1 : -1]
        expected = (
            torch.log_softmax(logits.float() / hf_agent.temperature, -1)
            .gather(1, torch.tensor(sampled)[:, None])
            .squeeze(1)
        )
        np.testing.assert_allclose(action.logprobs[: len(sampled)], expected.numpy(), atol=2e-4)


def test_hf_sampling_ignores_the_model_s_own_generation_defaults() -> None:
    """Qwen ships repetition_penalty/top_k defaults; merged into sampling they would make the
    recorded log-probs describe another distribution than the one sampled from."""
    env = diaggym()
    env.reset(seed=1)

    def sample(agent: HFAgent) -> list[int]:
        chat = Chat(
            messages=[{"role": "user", "content": "Patient with fever."}],
            tools=[],
            env=env.unwrapped,
            rng=np.random.default_rng(0),
        )
        return agent.act(chat).token_ids or []

    plain = sample(HFAgent("tiny", max_new_tokens=12, seed=3))
    shipped = HFAgent("tiny", max_new_tokens=12, seed=3)
    shipped.lm.generation_config.repetition_penalty = 5.0
    shipped.lm.generation_config.suppress_tokens = plain[
        :3
    ]  # merged in, it would change the sample
    assert sample(shipped) == plain
    assert shipped.lm.generation_config.suppress_tokens == plain[:3]  # restored after sampling


def test_hf_left_padding_does_not_change_greedy_output() -> None:
    agent = HFAgent("tiny", max_new_tokens=10, temperature=0.0)
    env = diaggym().unwrapped

    def chat(text: str) -> Chat:
        return Chat(
            messages=[{"role": "user", "content": text}],
            tools=[],
            env=env,
            rng=np.random.default_rng(0),
        )

    short, long = chat("exam: CBC please"), chat("a much longer observation " * 8)
    alone = agent.act_batch([short])[0]
    batched = agent.act_batch([long, chat("exam: CBC please")])
    assert len(batched[0].prompt_ids) > len(alone.prompt_ids)  # the short prompt was left-padded
    assert batched[1].prompt_ids == alone.prompt_ids
    assert batched[1].token_ids == alone.token_ids
    # Padding changes neither the greedy tokens nor the distribution they were chosen from.
    np.testing.assert_allclose(batched[1].logprobs, alone.logprobs, atol=1e-4)


def test_hf_generation_timeout_cuts_the_reply_and_says_so() -> None:
    env = gym.make("rounds/Household-v0").unwrapped
    observation, info = env.reset(seed=0)

    def chat() -> Chat:
        messages = [
            {"role": "system", "content": env.system_prompt},
            {"role": "user", "content": observation},
        ]
        return Chat(
            messages=messages, tools=env.tools, env=env, rng=np.random.default_rng(0), info=info
        )

    full = HFAgent("tiny", max_new_tokens=3000, seed=0, timeout_s=None).act(chat())
    assert full.finish_reason == "stop" and full.completion_tokens > 200
    cut = HFAgent("tiny", max_new_tokens=3000, seed=0, timeout_s=0.05).act(chat())
    assert cut.finish_reason == "timeout" and cut.latency_s < full.latency_s
    assert 0 < cut.completion_tokens < full.completion_tokens
    sampled = [t for t, m in zip(cut.token_ids, cut.sampled_mask or [], strict=True) if m]
    assert sampled == full.token_ids[: len(sampled)]  # the same sample, cut short


def test_hf_episode_token_budget_ends_the_episode_before_any_context_cut() -> None:
    probe = HFAgent("tiny", max_new_tokens=16, seed=0)
    env = gym.make("rounds/Household-v0").unwrapped
    observation, info = env.reset(seed=0)
    messages = [
        {"role": "system", "content": env.system_prompt},
        {"role": "user", "content": observation},
    ]
    chat = Chat(
        messages=messages, tools=env.tools, env=env, rng=np.random.default_rng(0), info=info
    )
    budget = len(probe.tokens.prompt(chat, 16)[0]) + 150
    # The context equals the budget, as in the trainer: the cut must not happen, the end must.
    agent = HFAgent(
        "tiny", max_new_tokens=16, seed=0, max_context_tokens=budget, max_episode_tokens=budget
    )
    rollout = next(
        run_episodes(
            lambda: gym.make("rounds/Household-v0", max_turns=50),
            agent,
            [EpisodeSpec(seed=0)],
            env_id="rounds/Household-v0",
        )
    )
    assert rollout.episode.truncated
    assert rollout.episode.meta["truncation_reason"] == f"episode token budget ({budget}) reached"
    assert not any(a.context_reset for a in rollout.actions)
    assert sum(len(a.prompt_ids or []) + len(a.token_ids or []) for a in rollout.actions) <= budget


def test_hf_context_window_management_rebuilds_from_truncated_messages() -> None:
    agent = HFAgent("tiny", max_new_tokens=8, max_context_tokens=300)
    episodes = run(agent, "rounds/DiagGym-v0", 1, concurrency=1)
    rollout = episodes[0]
    assert any(a.context_reset for a in rollout.actions)
    assert all(a.prompt_tokens + 8 <= 300 for a in rollout.actions)


# ------------------------------------------------------------------ openai agent


def test_openai_agent_plays_with_tool_calls_and_retries() -> None:
    state = {"calls": 0}

    def handler(path: str, payload: dict) -> tuple[int, object, dict[str, str]]:
        state["calls"] += 1
        if state["calls"] == 1:
            return 500, {"error": "overloaded"}, {}
        if state["calls"] == 2:
            return 200, "{not json", {}
        if state["calls"] == 3:
            return 429, {"error": "slow down"}, {"Retry-After": "0"}
        assert payload["tools"][0]["function"]["name"] == "order_exam"
        last = payload["messages"][-1]
        if last["role"] == "tool":
            return (
                200,
                chat_body(
                    None,
                    [
                        {
                            "id": "c2",
                            "type": "function",
                            "function": {
                                "name": "diagnose",
                                "arguments": '{"diagnosis": "pneumonia"}',
                            },
                        }
                    ],
                ),
                {},
            )
        return (
            200,
            chat_body(
                "Let me check.",
                [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "order_exam", "arguments": '{"exam": "chest X-ray"}'},
                    }
                ],
            ),
            {},
        )

    with fake_openai_server(handler) as (base_url, received):
        agent = OpenAIAgent("fake-model", base_url=base_url, backoff_s=0.01)
        rollout = run(agent, "rounds/DiagGym-v0", 1, concurrency=1)[0]
    episode = rollout.episode
    assert not episode.truncated and episode.num_turns == 2
    assert "Chest X-ray" in episode.turns[1].observation
    assert episode.turns[0].tokens.prompt == 12 and episode.turns[0].tokens.completion == 7
    assert rollout.messages[3]["role"] == "tool" and rollout.messages[3]["tool_call_id"] == "c1"
    assert episode.metrics["diagnosis_given"] == 1.0
    assert state["calls"] == 5


def test_openai_failures_end_the_episode_not_the_run() -> None:
    def handler(path: str, payload: dict) -> tuple[int, object, dict[str, str]]:
        if "FAIL" in payload["messages"][1]["content"]:
            return 500, {"error": "down"}, {}
        return 200, chat_body("look"), {}

    with fake_openai_server(handler) as (base_url, _):
        agent = OpenAIAgent("m", base_url=base_url, max_retries=1, backoff_s=0.01)
        env_id = "examples/EchoFail-v0"
        rounds.register_env(env_id, entry_point=f"{__name__}:EchoEnv")
        specs = [EpisodeSpec(task_id=t) for t in ("ok-1", "FAIL-2", "ok-3")]
        rollouts = {
            r.episode.task_id: r.episode
            for r in run_episodes(
                lambda: gym.make(env_id), agent, specs, env_id=env_id, concurrency=2
            )
        }
    assert rollouts["FAIL-2"].truncated
    assert (
        "agent error" in rollouts["FAIL-2"].meta["truncation_reason"]
        and "HTTP 500" in rollouts["FAIL-2"].meta["truncation_reason"]
    )
    assert not rollouts["ok-1"].truncated and not rollouts["ok-3"].truncated


def test_openai_agent_requests_run_concurrently() -> None:
    lock = threading.Lock()
    load = {"now": 0, "most": 0}

    def handler(path: str, payload: dict) -> tuple[int, object, dict[str, str]]:
        with lock:
            load["now"] += 1
            load["most"] = max(load["most"], load["now"])
        time.sleep(0.3)
        with lock:
            load["now"] -= 1
        return 200, chat_body("look"), {}

    with fake_openai_server(handler) as (base_url, _):
        agent = OpenAIAgent("m", base_url=base_url)
        env_id = "examples/EchoFail-v0"
        rounds.register_env(env_id, entry_point=f"{__name__}:EchoEnv")
        specs = [EpisodeSpec(task_id=f"ok-{i}") for i in range(8)]
        done = list(
            run_episodes(lambda: gym.make(env_id), agent, specs, env_id=env_id, concurrency=8)
        )
    # Requests overlapped (the server saw several at once), however loaded the machine is.
    assert len(done) == 8 and load["most"] >= 4


# ------------------------------------------------------------------ the loop with bad agents and envs


class EchoEnv(TextEnv):
    """One-turn env: any non-empty reply ends the episode; 'slow' sleeps; 'boom' raises."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(max_turns=3, **kwargs)

    @property
    def system_prompt(self) -> str:
        return "Say anything."

    def task_ids(self, split: str | None = None) -> list[str]:
        return [f"ok-{i}" for i in range(10)]

    def _begin(self, task_id: str, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        return f"Task {task_id}", {}

    def _act(self, text: str) -> StepResult:
        if text == "slow":
            time.sleep(2.0)
        if text == "boom":
            raise RuntimeError("the env broke")
        return StepResult(f"echo {text}", terminated=True)

    def _finish(self, terminated: bool) -> EpisodeEnd:
        return EpisodeEnd({"outcome": float(terminated)}, {"success": float(terminated)})


class ScriptAgent(BaseAgent):
    """Replies from a list of texts, one per turn of every episode."""

    def __init__(self, replies: Sequence[str], batched: bool = False) -> None:
        self.replies = list(replies)
        self.batched = batched
        self.name = "script"
        self._lock = threading.Lock()
        self._turns: dict[int, int] = {}

    def act(self, chat: Chat) -> Action:
        with self._lock:
            turn = self._turns.get(id(chat), 0)
            self._turns[id(chat)] = turn + 1
        reply = self.replies[min(turn, len(self.replies) - 1)]
        if reply == "RAISE":
            raise ValueError("agent bug")
        return Action(text=reply)


@pytest.mark.parametrize("batched", [False, True])
def test_bad_model_outputs_are_recorded_and_the_run_continues(batched: bool) -> None:
    env_id = "examples/EchoFail-v0"
    rounds.register_env(env_id, entry_point=f"{__name__}:EchoEnv")
    bad = [
        "",
        "   \n\t",
        "la " * 5000,
        "bad bytes \udcff\ud800",
        '{"name": "order_exam", "arguments": {"exam": 3}}',
    ]
    agent = ScriptAgent([*bad[:3], "ok"], batched=batched)
    rollouts = list(
        run_episodes(lambda: gym.make(env_id), agent, [EpisodeSpec(task_id="ok-1")], env_id=env_id)
    )
    turns = rollouts[0].episode.turns
    assert [t.info["invalid_action"] for t in turns] == [True, True, False]
    clinic = ScriptAgent([*bad[3:], "diagnosis: flu"], batched=batched)
    episode = next(
        run_episodes(
            lambda: gym.make("rounds/DiagGym-v0"),
            clinic,
            [EpisodeSpec(seed=0)],
            env_id="rounds/DiagGym-v0",
        )
    ).episode
    assert [t.info["invalid_action"] for t in episode.turns] == [True, True, False]
    assert episode.turns[0].action == "bad bytes ??"


@pytest.mark.parametrize("batched", [False, True])
def test_agent_exceptions_and_env_failures_truncate_only_their_episode(batched: bool) -> None:
    env_id = "examples/EchoFail-v0"
    rounds.register_env(env_id, entry_point=f"{__name__}:EchoEnv")
    specs = [EpisodeSpec(task_id="ok-1"), EpisodeSpec(task_id="ok-2"), EpisodeSpec(task_id="ok-3")]
    reasons = {}
    for reply in ("RAISE", "boom", "slow"):
        agent = ScriptAgent([reply], batched=batched)
        for rollout in run_episodes(
            lambda: gym.make(env_id), agent, specs[:1], env_id=env_id, step_timeout_s=0.3
        ):
            reasons[reply] = rollout.episode.meta.get("truncation_reason", "")
            assert rollout.episode.truncated
    assert reasons["RAISE"].startswith("agent error: ValueError: agent bug")
    assert reasons["boom"].startswith("env error: RuntimeError: the env broke")
    assert reasons["slow"] == "env step timed out after 0.3s"
    fine = list(
        run_episodes(
            lambda: gym.make(env_id),
            ScriptAgent(["hi"], batched=batched),
            specs,
            env_id=env_id,
            concurrency=2,
        )
    )
    assert len(fine) == 3 and all(not r.episode.truncated for r in fine)


class SlowTaskEnv(EchoEnv):
    """Three turns; every step of task ``slow`` takes 0.6 s, the others are instant.

    ``slow_steps_done`` records when each slow step returned (``time.perf_counter``), so
    tests compare events with each other instead of with wall-clock bounds that a loaded
    machine could break.
    """

    slow_steps_done: ClassVar[list[float]] = []

    def task_ids(self, split: str | None = None) -> list[str]:
        return ["slow", "fast-1", "fast-2", "fast-3"]

    def _act(self, text: str) -> StepResult:
        if self.task_id == "slow":
            time.sleep(0.6)
            SlowTaskEnv.slow_steps_done.append(time.perf_counter())
        return StepResult(f"turn {self.turn}", terminated=self.turn == 3)


class BatchRecorder(BaseAgent):
    """A batched agent that records which episodes each ``act_batch`` call covered."""

    batched = True
    name = "recorder"

    def __init__(self) -> None:
        self.batches: list[list[str]] = []

    def act_batch(self, chats: Sequence[Chat]) -> list[Action]:
        self.batches.append(sorted(str(chat.env.task_id) for chat in chats))
        return [Action(text="hello") for _ in chats]

    def act(self, chat: Chat) -> Action:
        return self.act_batch([chat])[0]


@pytest.mark.parametrize("straggler_s", [0.15, None])
def test_a_slow_env_does_not_stall_generation_for_the_others(straggler_s: float | None) -> None:
    env_id = "examples/SlowTask-v0"
    rounds.register_env(env_id, entry_point=f"{__name__}:SlowTaskEnv")
    SlowTaskEnv.slow_steps_done.clear()
    agent = BatchRecorder()
    specs = [EpisodeSpec(task_id=t) for t in ("slow", "fast-1", "fast-2", "fast-3")]
    order = []
    finished: dict[str, float] = {}
    for rollout in run_episodes(
        lambda: gym.make(env_id),
        agent,
        specs,
        env_id=env_id,
        concurrency=4,
        straggler_s=straggler_s,
    ):
        assert not rollout.episode.truncated and rollout.episode.num_turns == 3
        assert [t.observation for t in rollout.episode.turns] == [
            f"Task {rollout.episode.task_id}",
            "turn 1",
            "turn 2",
        ]
        order.append(rollout.episode.task_id)
        finished[str(rollout.episode.task_id)] = time.perf_counter()
    everyone = ["fast-1", "fast-2", "fast-3", "slow"]
    if straggler_s is None:
        # Waiting for every step: three full batches, the slow episode holds each one back.
        assert agent.batches == [everyone] * 3
    else:
        # The fast episodes ran their three turns while the slow one's first step was running
        # (compared by event order, not by a time bound a loaded machine could break): they
        # finished before that step returned, and the slow episode acted alone afterwards.
        first_slow_step = SlowTaskEnv.slow_steps_done[0]
        assert sorted(order[:3]) == everyone[:3] and order[3] == "slow"
        assert all(finished[task] < first_slow_step for task in everyone[:3])
        assert agent.batches[0] == everyone
        assert [b for b in agent.batches if "slow" in b][1:] == [["slow"], ["slow"]]


#: How long FlakyEnv's hung calls take: far above the tests' 0.4 s timeouts, so a bound below
#: it tells a run that gave up on hung calls from one that waited them out, on a loaded machine too.
HANG_S = 2.5


class FlakyEnv(EchoEnv):
    """Per task: a step that hangs, a reset that raises or hangs, an env's own TimeoutError."""

    made: ClassVar[list[FlakyEnv]] = []
    closed: ClassVar[list[FlakyEnv]] = []

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        FlakyEnv.made.append(self)

    def close(self) -> None:
        FlakyEnv.closed.append(self)
        super().close()

    def task_ids(self, split: str | None = None) -> list[str]:
        return ["hang", "reset-boom", "reset-hang", "own-timeout"] + [f"ok-{i}" for i in range(5)]

    def _begin(self, task_id: str, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        if task_id == "reset-boom":
            raise RuntimeError("the sandbox did not start")
        if task_id == "reset-hang":
            time.sleep(HANG_S)
        return super()._begin(task_id, options)

    def _act(self, text: str) -> StepResult:
        if self.task_id == "hang":
            time.sleep(HANG_S)
        if self.task_id == "own-timeout":
            raise TimeoutError("socket timed out")
        return super()._act(text)


@pytest.mark.parametrize("batched", [False, True])
def test_hung_or_failing_env_calls_end_only_their_episode(batched: bool) -> None:
    env_id = "examples/Flaky-v0"
    rounds.register_env(env_id, entry_point=f"{__name__}:FlakyEnv")
    FlakyEnv.made.clear()
    FlakyEnv.closed.clear()
    order = ["hang", "ok-1", "reset-boom", "ok-2", "reset-hang", "ok-3", "own-timeout", "ok-4"]
    started = time.perf_counter()
    reasons = {
        r.episode.task_id: r.episode.meta.get("truncation_reason")
        for r in run_episodes(
            lambda: gym.make(env_id),
            ScriptAgent(["hi"], batched=batched),
            [EpisodeSpec(task_id=t) for t in order],
            env_id=env_id,
            concurrency=1,  # one worker: a hung call must not make the next ones queue and time out
            step_timeout_s=0.4,
        )
    }
    # Waiting out even one hung call would take HANG_S; the run took the two 0.4 s timeouts.
    assert time.perf_counter() - started < HANG_S
    assert reasons == {
        "hang": "env step timed out after 0.4s",
        "reset-boom": "env reset error: RuntimeError: the sandbox did not start",
        "reset-hang": "env reset timed out after 0.4s",
        "own-timeout": "env error: TimeoutError: socket timed out",
        **{f"ok-{i}": None for i in range(1, 5)},
    }
    time.sleep(HANG_S + 0.3)  # the hung calls return; every env made has been closed by now
    assert {id(e) for e in FlakyEnv.made} == {id(e) for e in FlakyEnv.closed}

    no_limit = list(
        run_episodes(
            lambda: gym.make(env_id),
            ScriptAgent(["hi"], batched=batched),
            [EpisodeSpec(task_id="ok-1")],
            env_id=env_id,
            step_timeout_s=None,
        )
    )
    assert not no_limit[0].episode.truncated


@pytest.mark.parametrize("batched", [False, True])
def test_an_env_built_after_its_timeout_is_closed(batched: bool) -> None:
    env_id = "examples/Flaky-v0"
    rounds.register_env(env_id, entry_point=f"{__name__}:FlakyEnv")
    FlakyEnv.made.clear()
    FlakyEnv.closed.clear()
    builds = itertools.count()

    def slow_first_build() -> gym.Env:
        if next(builds) == 0:
            time.sleep(0.8)  # a sandbox that starts too slowly
        return gym.make(env_id)

    reasons = [
        r.episode.meta.get("truncation_reason")
        for r in run_episodes(
            slow_first_build,
            ScriptAgent(["hi"], batched=batched),
            [EpisodeSpec(task_id="ok-1"), EpisodeSpec(task_id="ok-2")],
            env_id=env_id,
            step_timeout_s=0.3,
        )
    ]
    assert reasons == ["env reset timed out after 0.3s", None]
    time.sleep(1.0)
    assert len(FlakyEnv.made) == 2 and {id(e) for e in FlakyEnv.made} == {
        id(e) for e in FlakyEnv.closed
    }


class SteadyEnv(EchoEnv):
    """Three turns; every step takes 50 ms."""

    def _act(self, text: str) -> StepResult:
        time.sleep(0.05)
        return StepResult(f"turn {self.turn}", terminated=self.turn == 3)


def test_waiting_for_every_step_keeps_batches_full_when_an_episode_ends_early() -> None:
    env_id = "examples/Steady-v0"
    rounds.register_env(env_id, entry_point=f"{__name__}:SteadyEnv")

    class EndsSome(BatchRecorder):
        def act_batch(self, chats: Sequence[Chat]) -> list[Action]:
            super().act_batch(chats)
            return [
                Action(text="", end_reason="done early")
                if str(chat.env.task_id).startswith("end")
                else Action(text="hello")
                for chat in chats
            ]

    agent = EndsSome()
    specs = [EpisodeSpec(task_id=t) for t in ("end-0", "t0", "t1", "t2", "t3")]
    rollouts = list(
        run_episodes(
            lambda: gym.make(env_id),
            agent,
            specs,
            env_id=env_id,
            concurrency=4,
            straggler_s=None,
        )
    )
    assert len(rollouts) == 5
    # The episode started in end-0's slot joins the others' next round instead of going alone.
    assert agent.batches == [
        ["end-0", "t0", "t1", "t2"],
        ["t0", "t1", "t2", "t3"],
        ["t0", "t1", "t2", "t3"],
        ["t3"],
    ]


def test_a_slot_freed_by_the_agent_starts_the_next_episode_without_waiting() -> None:
    env_id = "examples/SlowTask-v0"
    rounds.register_env(env_id, entry_point=f"{__name__}:SlowTaskEnv")
    SlowTaskEnv.slow_steps_done.clear()
    first_batch: dict[str, float] = {}

    class EndsFast(BatchRecorder):
        def act_batch(self, chats: Sequence[Chat]) -> list[Action]:
            for chat in chats:
                first_batch.setdefault(str(chat.env.task_id), time.perf_counter())
            return [
                Action(text="", end_reason="done early")
                if chat.env.task_id == "fast-1"
                else Action(text="hello")
                for chat in chats
            ]

    specs = [EpisodeSpec(task_id=t) for t in ("slow", "fast-1", "fast-2")]
    list(
        run_episodes(
            lambda: gym.make(env_id),
            EndsFast(),
            specs,
            env_id=env_id,
            concurrency=2,
            straggler_s=0.05,
        )
    )
    # fast-2 took fast-1's slot at once, not after the slow episode's first step returned.
    assert first_batch["fast-2"] < SlowTaskEnv.slow_steps_done[0]


def test_registry_errors_say_what_to_do() -> None:
    env = gym.make("rounds/Household-v0").unwrapped
    with pytest.raises(ValueError, match="needs a model"):
        make_agent("hf", env)
    with pytest.raises(ValueError, match="unknown agent 'gpt'"):
        make_agent("gpt", env)
    with pytest.raises(ValueError, match=r"agent 'hf'.*unexpected keyword"):
        make_agent("hf", env, model="tiny", beam_width=3)


@pytest.mark.gpu
def test_vllm_agent_on_gpu() -> None:
    if not torch.cuda.is_available():
        pytest.skip("GPU test: needs a CUDA GPU and vLLM (rounds[vllm])")
    pytest.importorskip("vllm", reason="GPU test: needs vLLM (pip install 'rounds[vllm]')")
    agent = make_agent(
        "vllm",
        gym.make("rounds/DiagGym-v0").unwrapped,
        model="tiny",
        max_new_tokens=8,
        gpu_memory_utilization=0.2,
    )
    rollout = run(agent, "rounds/DiagGym-v0", 2)[0]
    action = rollout.actions[0]
    assert action.token_ids and len(action.logprobs) == len(action.token_ids)


def test_env_call_pools_are_reused_but_never_shared() -> None:
    """A finished pool is kept for the next EnvCalls of its size; the one that let it go can
    neither submit to it nor shut it down (a late caller after a run was closed)."""
    from rounds.agents.env_calls import EnvCalls

    first = EnvCalls(3)
    assert first.submit(lambda: 1).result() == 1
    first.shutdown()
    second = EnvCalls(3)
    with pytest.raises(RuntimeError, match="shut down"):
        first.submit(lambda: 2)
    first.abandon_hung()
    first.shutdown()  # twice: nothing happens to the pool second holds
    assert second.submit(lambda: 3).result() == 3
    second.shutdown()
    third, fourth = EnvCalls(3), EnvCalls(3)
    assert third._pool is not fourth._pool
    assert third.submit(lambda: 4).result() == 4 and fourth.submit(lambda: 5).result() == 5
    third.shutdown()
    fourth.shutdown()
