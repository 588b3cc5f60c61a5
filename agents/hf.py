"""``hf``: a transformers causal LM, batched across episodes, returning sampled tokens and log-probs."""

from __future__ import annotations

import time
import weakref
from collections.abc import Sequence
from typing import Any

from rounds.agents.base import Action, BaseAgent, Chat
from rounds.agents.kv_cache import (
    CacheStats,
    EpisodeCache,
    layout_batch,
    plain_layers,
    reusable_length,
    split_batch_cache,
    weights_version,
)
from rounds.agents.openai_agent import remember_screenshot
from rounds.agents.tokens import ConversationTokens, over_budget
from rounds.models.sampling import SamplingSettings, sample

#: Where an episode's :class:`EpisodeCache` lives between turns (``chat.state``, which the
#: chat loop drops when the episode ends).
KV_CACHE_KEY = "kv_cache"


class HFAgent(BaseAgent):
    """A local causal LM (CPU or GPU) that generates for many episodes in one batch.

    Prompts are left-padded; each sequence stops at its own end-of-turn token. The
    log-probs are ``log softmax(logits / temperature)`` of the sampled tokens, the
    sampling distribution when ``top_p=1`` and ``top_k=0`` (the defaults); the model's
    own generation defaults (a repetition penalty, top-k) are not applied.

    A vision-language model (a config with a ``vision_config``, e.g. Qwen2-VL or
    ``"tiny-vl"``) is loaded with its image processor, and sees each screenshot an
    env returns (``info["screenshot"]``, e.g. ``rounds/GUI-v0`` in ``screenshot``
    mode) as an image in its observation's message: image tokens in the prompt,
    pixel values passed to ``generate``. Every image stays in the episode's one
    token sequence. Such episodes are for evaluation: the trainer refuses the model.

    Args:
        model: a local path, a hub id, ``"tiny"`` or ``"tiny-vl"``; or pass ``model_obj`` and
            ``tokenizer`` (and ``image_processor`` for a vision-language model).
        device, dtype: where and how to load the weights.
        max_new_tokens: longest reply per turn.
        temperature, top_p, top_k: sampling; ``temperature=0`` is greedy.
        max_context_tokens: default: the model's ``max_position_embeddings``.
        max_episode_tokens: end an episode (truncated, with the reason) before its token
            sequence could exceed this; for training, where a cut context would break
            the one-sequence-per-episode contract.
        seed: seeds sampling (together with the number of calls so far).
        use_tools: pass env tool specs to the chat template when it renders tools.
        timeout_s: a generation call running longer than this stops where it is (``max_time``);
            the cut replies end with ``finish_reason="timeout"``, so a stuck model cannot
            hold a run for ever.
        reuse_cache: keep each live episode's KV cache between turns, so a turn prefills
            only the tokens it added (see :mod:`rounds.agents.kv_cache`); the sampled tokens
            and log-probs are those of a full re-prefill. Off: every turn re-encodes the
            whole conversation. Vision-language models always re-encode.
    """

    batched = True

    def __init__(
        self,
        model: str = "tiny",
        *,
        model_obj: Any = None,
        tokenizer: Any = None,
        image_processor: Any = None,
        device: str = "cpu",
        dtype: str = "auto",
        max_new_tokens: int = 256,
        temperature: float = 1.0,
        top_p: float = 1.0,
        top_k: int = 0,
        max_context_tokens: int | None = None,
        max_episode_tokens: int | None = None,
        seed: int = 0,
        use_tools: bool = True,
        timeout_s: float | None = 600.0,
        reuse_cache: bool = True,
    ) -> None:
        from rounds.models import (
            is_vision_language,
            load_model_and_tokenizer,
            load_vision_language_model,
        )

        self.name = "hf"
        self.model = model
        if model_obj is None and is_vision_language(model):
            model_obj, tokenizer, image_processor = load_vision_language_model(
                model, dtype=dtype, device=device
            )
        elif model_obj is None:
            model_obj, tokenizer = load_model_and_tokenizer(model, dtype=dtype, device=device)
        if tokenizer is None:
            raise ValueError("pass the tokenizer together with model_obj")
        self.lm = model_obj
        self.tokenizer = tokenizer
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.device = device
        self.max_new_tokens = max_new_tokens
        self.timeout_s = timeout_s
        self.temperature = temperature
        self.top_p = top_p
        self.top_k = top_k
        self.seed = seed
        self.max_episode_tokens = max_episode_tokens
        self.reuse_cache = reuse_cache
        #: Prompt tokens read from episodes' caches against those the model ran, and why
        #: later turns were prefilled from scratch.
        self.cache_stats = CacheStats()
        #: Episode caches that are views of the last generation's batched cache (ended
        #: episodes drop out); see :class:`~rounds.agents.kv_cache.EpisodeCache`.
        self._views: weakref.WeakSet[EpisodeCache] = weakref.WeakSet()
        self._calls = 0
        #: Wall-clock seconds spent in generation (the trainer reports it apart from env time).
        self.generation_seconds = 0.0
        config = self.lm.config
        context = max_context_tokens or int(
            getattr(getattr(config, "text_config", config), "max_position_embeddings", 32_768)
        )
        self.image_processor = image_processor
        self.tokens = ConversationTokens(
            tokenizer,
            use_tools=use_tools,
            max_context_tokens=context,
            image_processor=image_processor,
        )
        # Sampling follows exactly the settings above (rounds.models.sampling swaps in a
        # neutral generation config); the model's own config only names its stop tokens.
        stops = self.lm.generation_config.eos_token_id
        stops = stops if isinstance(stops, list) else [stops]
        self.stop_ids = sorted({int(s) for s in stops if s is not None} | {self.tokens.eos_id})
        self.tokens.stop_ids = set(self.stop_ids)

    def act(self, chat: Chat) -> Action:
        return self.act_batch([chat])[0]

    def act_batch(self, chats: Sequence[Chat]) -> list[Action]:
        started = time.perf_counter()
        if self.image_processor is not None:
            for chat in chats:
                remember_screenshot(chat)
        prompts = [self.tokens.prompt(chat, self.max_new_tokens) for chat in chats]
        live, actions = over_budget(prompts, self.max_episode_tokens, self.max_new_tokens)
        for i in actions:  # these episodes end here: free their caches now
            chats[i].state.pop(KV_CACHE_KEY, None)
        if live:
            generated = self._generate(
                [chats[i] for i in live], [prompts[i] for i in live], started
            )
            actions.update(zip(live, generated, strict=True))
        return [actions[i] for i in range(len(chats))]

    def _generate(
        self,
        chats: Sequence[Chat],
        prompts: list[tuple[list[int], list[int], bool]],
        started: float,
    ) -> list[Action]:
        import torch

        reuse = self.reuse_cache and self.image_processor is None
        version = weights_version(self.lm) if reuse else 0
        held = [
            self._held_cache(chat, prompt, version, reuse)
            for chat, prompt in zip(chats, prompts, strict=True)
        ]
        taken = {id(h[0]) for h in held if h is not None}
        for waiting in list(self._views):  # episodes sitting this round out
            if id(waiting) not in taken:
                waiting.own()
        self._views.clear()
        pad = int(self.tokenizer.pad_token_id)
        batch = layout_batch(
            [ids for ids, _, _ in prompts], held, pad, self.device, self.max_new_tokens
        )
        input_ids, attention = batch.input_ids, batch.attention_mask
        cache = batch.cache
        del batch, held  # the batch's cache is the only copy while generating
        images = [self.tokens.images(chat) for chat in chats]
        vision: dict[str, Any] = {}
        if any(i is not None for i in images):
            vision["pixel_values"] = torch.cat([i[0] for i in images if i is not None]).to(
                self.device, dtype=self.lm.dtype
            )
            vision["image_grid_thw"] = torch.cat([i[1] for i in images if i is not None]).to(
                self.device
            )
            # Which tokens are image tokens (1) rather than text (0): M-RoPE positions need it.
            vision["mm_token_type_ids"] = (input_ids == self.tokens.image_token_id).int()
        seed = self.seed * 1_000_003 + self._calls
        self._calls += 1
        settings = SamplingSettings(
            max_new_tokens=self.max_new_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            top_k=self.top_k,
            stop_ids=tuple(self.stop_ids),
            pad_id=pad,
        )
        drawn = sample(
            self.lm,
            input_ids,
            attention,
            settings,
            seed=seed,
            max_time=self.timeout_s,
            cache=cache,
            **vision,
        )
        new, logprobs = drawn.tokens, drawn.logprobs
        elapsed = time.perf_counter() - started
        self.generation_seconds += elapsed
        cut = new.shape[1] < self.max_new_tokens and not all(
            any(t in self.stop_ids for t in row) for row in new.tolist()
        )
        completions = []
        for row in new.tolist():
            stop = next((i + 1 for i, t in enumerate(row) if t in self.stop_ids), None)
            completions.append(row if stop is None else row[:stop])
        if reuse:
            self._keep_caches(chats, prompts, completions, drawn.cache, attention, version)
        actions = []
        for row, (chat, prompt) in enumerate(zip(chats, prompts, strict=True)):
            sampled = completions[row]
            stopped = bool(sampled) and sampled[-1] in self.stop_ids
            actions.append(
                self.tokens.action(
                    chat,
                    prompt,
                    sampled,
                    logprobs[row, : len(sampled)].tolist(),
                    latency_s=elapsed,
                    finish_reason="timeout" if cut and not stopped else None,
                )
            )
        return actions

    def _held_cache(
        self, chat: Chat, prompt: tuple[list[int], list[int], bool], version: int, reuse: bool
    ) -> tuple[EpisodeCache, int] | None:
        """Take ``chat``'s held cache out of its state, with how many of its tokens this turn
        can use; None (and a count of why) when the turn must be prefilled from scratch."""
        ids, _, reset = prompt
        held: EpisodeCache | None = chat.state.pop(KV_CACHE_KEY, None)
        length, reason = 0, None
        if held is not None and reuse:
            reason = "context cut" if reset else None
            if reason is None:
                length, reason = reusable_length(held, ids, version, self.lm.device)
        if reason is not None:
            self.cache_stats.fresh_prefills[reason] += 1
        self.cache_stats.reused_tokens += length
        self.cache_stats.prefilled_tokens += len(ids) - length
        return (held, length) if held is not None and length > 0 else None

    def _keep_caches(
        self,
        chats: Sequence[Chat],
        prompts: list[tuple[list[int], list[int], bool]],
        completions: list[list[int]],
        generated: Any,
        attention: Any,
        version: int,
    ) -> None:
        """Store each episode's own cache from the generation's batched one."""
        layers = plain_layers(generated)
        if layers is None:  # e.g. a sliding-window model: the next turns re-encode
            self.cache_stats.fresh_prefills["model cache not reusable"] += len(chats)
            return
        caches = split_batch_cache(
            layers, attention, [ids for ids, _, _ in prompts], completions, version
        )
        for chat, cache in zip(chats, caches, strict=True):
            chat.state[KV_CACHE_KEY] = cache
            self._views.add(cache)
