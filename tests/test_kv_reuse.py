"""KV-cache reuse across turns in the ``hf`` agent changes nothing but the work done.

With greedy decoding, episodes of different lengths batched together sample the
same tokens with the same log-probs whether each turn reuses the episode's cache or
re-encodes the whole conversation; a turn runs only the tokens it added; a finished
episode's cache is freed; a cut context, changed weights or a changed sequence fall
back to a fresh prefill.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
import torch

from rounds.agents.base import Action, Chat
from rounds.agents.hf import KV_CACHE_KEY, HFAgent
from rounds.agents.kv_cache import plain_layers
from rounds.agents.loop import EpisodeSpec, Rollout, run_episodes
from rounds.models import load_model_and_tokenizer
from rounds.models.caches import ReservedLayer
from rounds.text_env import EpisodeEnd, StepResult, TextEnv

#: Turns per task: episodes of different lengths in one batch (the short ones end early).
TURNS = {"t0": 5, "t1": 2, "t2": 4, "t3": 3}
WORDS = [
    "the",
    "patient",
    "reports",
    "a",
    "cough",
    "and",
    "fever",
    "since",
    "monday",
    "with",
    "chest",
    "pain",
    "on",
    "breathing",
]


class Chatter(TextEnv):
    """Each turn answers with an observation whose length depends on the task and turn."""

    def __init__(self) -> None:
        super().__init__(max_turns=max(TURNS.values()), invalid_action_penalty=0.0)
        self.turns = 0
        self.index = 0

    @property
    def system_prompt(self) -> str:
        return "You are a careful clinician. Ask one question per turn."

    def task_ids(self, split: str | None = None) -> list[str]:
        return list(TURNS)

    def _observation(self) -> str:
        count = 3 + (7 * self.index + 5 * self.turn) % 11
        words = (WORDS[(self.index + i) % len(WORDS)] for i in range(count))
        return f"Turn {self.turn}: " + " ".join(words)

    def _begin(self, task_id: str, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        self.turns, self.index = TURNS[task_id], int(task_id[1:])
        return self._observation(), {}

    def _act(self, text: str) -> StepResult:
        return StepResult(self._observation(), {}, terminated=self.turn >= self.turns)

    def reject(self, message: str) -> StepResult:
        """An empty reply (a random model writes many) counts as a turn like any other."""
        return self._act("")

    def _finish(self, terminated: bool) -> EpisodeEnd:
        return EpisodeEnd({"outcome": 0.0}, {})


@pytest.fixture(scope="module")
def tiny_lm() -> tuple[Any, Any]:
    return load_model_and_tokenizer("tiny", dtype="float32", device="cpu")


def agent(tiny_lm: tuple[Any, Any], reuse: bool, **options: Any) -> HFAgent:
    model, tokenizer = tiny_lm
    options = {"max_new_tokens": 10, "temperature": 0.0, **options}
    return HFAgent(model_obj=model, tokenizer=tokenizer, reuse_cache=reuse, **options)


def play(hf: HFAgent) -> dict[str, Rollout]:
    specs = [EpisodeSpec(task_id=task, seed=0) for task in TURNS]
    rollouts = run_episodes(
        Chatter, hf, specs, env_id="test/Chatter", concurrency=len(specs), straggler_s=None
    )
    return {str(r.episode.task_id): r for r in rollouts}


def assert_same_turns(reused: Sequence[Action], fresh: Sequence[Action]) -> None:
    assert len(reused) == len(fresh)
    for turn, (a, b) in enumerate(zip(reused, fresh, strict=True)):
        assert a.prompt_ids == b.prompt_ids, f"turn {turn}: prompts differ"
        assert a.token_ids == b.token_ids, f"turn {turn}: sampled tokens differ"
        assert a.logprobs is not None and b.logprobs is not None
        np.testing.assert_allclose(a.logprobs, b.logprobs, rtol=0, atol=2e-5)


def test_reuse_samples_what_a_full_reprefill_samples_turn_by_turn(
    tiny_lm: tuple[Any, Any],
) -> None:
    reusing, fresh = agent(tiny_lm, True), agent(tiny_lm, False)
    live_caches: list[int] = []
    finished_holding: list[str] = []
    chats_seen: dict[str, Chat] = {}
    act_batch = reusing.act_batch

    def watched(chats: Sequence[Chat]) -> list[Action]:
        current = {str(chat.env.task_id): chat for chat in chats}
        # Every episode that has ended since the last round holds no cache any more.
        finished_holding.extend(
            task for task, chat in chats_seen.items() if task not in current and chat.state
        )
        chats_seen.update(current)
        live_caches.append(sum(KV_CACHE_KEY in chat.state for chat in chats))
        return act_batch(chats)

    reusing.act_batch = watched  # type: ignore[method-assign]
    with_reuse, without = play(reusing), play(fresh)

    assert {task: len(r.actions) for task, r in with_reuse.items()} == TURNS
    for task in TURNS:
        assert_same_turns(with_reuse[task].actions, without[task].actions)
    # Rounds shrink as episodes end; from the second round every live episode held a cache...
    assert live_caches == [0, 4, 3, 2, 1]
    # ...and an episode that ended freed its cache before the next round.
    assert finished_holding == []
    assert all(not chat.state for chat in chats_seen.values())
    # A turn ran only what it added: its prompt delta, plus at most the last sampled token and
    # an appended end-of-turn token of the previous reply (never fed back to the model).
    actions = [a for r in with_reuse.values() for a in r.actions]
    added = sum(len(a.prompt_ids or []) for a in actions)
    later_turns = len(actions) - len(TURNS)
    stats = reusing.cache_stats
    assert added <= stats.prefilled_tokens <= added + 2 * later_turns
    assert stats.reused_tokens == sum(a.prompt_tokens for a in actions) - stats.prefilled_tokens
    assert stats.reused_tokens > stats.prefilled_tokens
    assert not stats.fresh_prefills
    assert fresh.cache_stats.reused_tokens == 0


def test_a_cut_context_falls_back_to_a_fresh_prefill(tiny_lm: tuple[Any, Any]) -> None:
    reusing = agent(tiny_lm, True, max_context_tokens=120)
    fresh = agent(tiny_lm, False, max_context_tokens=120)
    with_reuse, without = play(reusing), play(fresh)
    cut = [a for r in with_reuse.values() for a in r.actions if a.context_reset]
    assert cut, "the context is small enough that long episodes are cut"
    for task in TURNS:
        assert_same_turns(with_reuse[task].actions, without[task].actions)
    assert reusing.cache_stats.fresh_prefills["context cut"] == len(cut)
    assert reusing.cache_stats.reused_tokens > 0


def conversation(env: Chatter) -> Chat:
    observation, _ = env.reset(options={"task_id": "t0"})
    return Chat(
        messages=[
            {"role": "system", "content": env.system_prompt},
            {"role": "user", "content": observation},
        ],
        tools=[],
        env=env,
        rng=np.random.default_rng(0),
    )


def next_turn(chat: Chat, action: Action, observation: str) -> None:
    chat.messages += [
        {"role": "assistant", "content": action.text},
        {"role": "user", "content": observation},
    ]


def test_changed_weights_or_sequence_are_never_read_from_the_cache(
    tiny_lm: tuple[Any, Any],
) -> None:
    model, tokenizer = load_model_and_tokenizer("tiny", dtype="float32", device="cpu")
    reusing = agent((model, tokenizer), True)
    fresh = agent((model, tokenizer), False)
    env = Chatter()
    chats = [conversation(env), conversation(env)]
    first = [hf.act(chat) for hf, chat in zip((reusing, fresh), chats, strict=True)]
    assert KV_CACHE_KEY in chats[0].state and KV_CACHE_KEY not in chats[1].state
    with torch.no_grad():  # an update in place, as an optimizer step makes
        for parameter in model.parameters():
            parameter.mul_(1.5)
    for chat, action in zip(chats, first, strict=True):
        next_turn(chat, action, "Turn 1: the cough is worse at night")
    second = [hf.act(chat) for hf, chat in zip((reusing, fresh), chats, strict=True)]
    assert reusing.cache_stats.fresh_prefills == {"weights changed": 1}
    assert_same_turns([second[0]], [second[1]])

    # A held sequence that is not a prefix of the episode's (edited state) is not used either.
    cache = chats[0].state[KV_CACHE_KEY]
    cache.tokens[5] = (cache.tokens[5] + 1) % tokenizer.vocab_size
    for chat, action in zip(chats, second, strict=True):
        next_turn(chat, action, "Turn 2: no fever today")
    third = [hf.act(chat) for hf, chat in zip((reusing, fresh), chats, strict=True)]
    assert reusing.cache_stats.fresh_prefills["sequence changed"] == 1
    assert_same_turns([third[0]], [third[1]])


def test_an_episode_ended_by_its_token_budget_frees_its_cache(tiny_lm: tuple[Any, Any]) -> None:
    reusing = agent(tiny_lm, True, max_episode_tokens=90)
    chat = conversation(Chatter())
    action = reusing.act(chat)
    assert KV_CACHE_KEY in chat.state and action.end_reason is None
    for turn in range(1, 10):
        next_turn(chat, action, f"Turn {turn}: " + " ".join(WORDS))
        action = reusing.act(chat)
        if action.end_reason is not None:
            break
    assert action.end_reason == "episode token budget (90) reached"
    assert KV_CACHE_KEY not in chat.state


def test_only_plain_full_attention_caches_are_kept() -> None:
    from transformers import DynamicCache, Qwen2Config

    keys = torch.zeros(1, 2, 6, 8)
    assert plain_layers(DynamicCache(ddp_cache_data=[(keys, keys), (keys, keys)])) is not None
    config = Qwen2Config(
        num_hidden_layers=2,
        use_sliding_window=True,
        sliding_window=4,
        layer_types=["sliding_attention", "full_attention"],
    )
    sliding = DynamicCache(config=config)
    for layer in range(2):
        sliding.update(keys, keys, layer)
    assert plain_layers(sliding) is None  # a window drops old columns: no per-episode prefix
    assert plain_layers(None) is None


def test_a_reserved_layer_writes_in_place_and_reseats_after_a_crop() -> None:
    keys = torch.zeros(2, 1, 8, 4)
    keys[:, :, :3] = 1.0
    layer = ReservedLayer(keys, keys.clone(), 3)
    step = torch.full((2, 1, 1, 4), 2.0)
    out_keys, _ = layer.update(step, step)
    assert out_keys.shape[2] == 4 and out_keys.data_ptr() == keys.data_ptr()  # no copy
    assert torch.equal(out_keys[:, :, 3], step[:, :, 0])
    layer.crop(-2)  # transformers' own method replaces the views
    out_keys, _ = layer.update(step * 2, step * 2)
    assert layer.get_seq_length() == 3 and torch.equal(out_keys[:, :, 2], step[:, :, 0] * 2)
    out_keys, _ = layer.update(torch.ones(2, 1, 9, 4), torch.ones(2, 1, 9, 4))  # past the room
    assert out_keys.shape[2] == 12 and torch.equal(out_keys[:, :, :2], torch.ones(2, 1, 2, 4))


def test_an_episode_that_sits_a_round_out_takes_its_own_copy(tiny_lm: tuple[Any, Any]) -> None:
    """Episode caches are views of their generation's batched cache until the next round;
    one that sits the round out (a slow env step) copies its columns out then, so old
    batches are not held, and its later turn still reuses them."""
    reusing, fresh = agent(tiny_lm, True), agent(tiny_lm, False)
    env = Chatter()
    pairs = [(conversation(env), conversation(env)) for _ in range(3)]
    firsts = [hf.act_batch([pair[i] for pair in pairs]) for i, hf in enumerate((reusing, fresh))]
    views = [pair[0].state[KV_CACHE_KEY] for pair in pairs]
    batch_keys = views[0].source[0][0]
    assert all(view.source[0][0] is batch_keys for view in views)  # one batched tensor
    for turn, (pair, a, b) in enumerate(zip(pairs, *firsts, strict=True)):
        next_turn(pair[0], a, f"Turn 1: cough {turn}")
        next_turn(pair[1], b, f"Turn 1: cough {turn}")
    reusing.act_batch([pairs[0][0], pairs[1][0]])  # the third episode sits this round out
    fresh.act_batch([pairs[0][1], pairs[1][1]])
    waiting = pairs[2][0].state[KV_CACHE_KEY]
    assert waiting.source[0][0] is not batch_keys and waiting.source[0][0].shape[0] == 1
    assert waiting.source[0][0].shape[2] == len(waiting.tokens)
    later = reusing.act(pairs[2][0])
    assert_same_turns([later], [fresh.act(pairs[2][1])])
    assert reusing.cache_stats.fresh_prefills == {}
