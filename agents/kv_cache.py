"""Per-episode KV caches for the ``hf`` agent: a turn prefills only the tokens it added.

Without a cache every turn re-encodes the whole conversation, so a 12-turn episode
prefills its first observation 12 times and a turn costs more the later it comes.
With one, an episode keeps the keys and values of its token sequence between turns
(:class:`EpisodeCache`, held in ``chat.state``) and the next turn feeds the model only
what the turn appended: the end of the last reply, the template's glue and the new
observation, exactly the tokens recorded in the episode's sequence.

How a batch of episodes of different lengths is laid out (:func:`layout_batch`).
Episode ``i`` holds keys and values for the first ``c_i`` of its ``n_i`` tokens. With
``C = max c_i`` and ``S = max (n_i - c_i)``, its row is

    [pad] * (C - c_i) + ids[:c_i] + [pad] * (S - (n_i - c_i)) + ids[c_i:]

with attention 0 on the pads. The held keys and values are right-aligned into one
``[B, heads, C, head_dim]`` tensor per layer (zeros under the pads) and passed as the
generation's cache, so the model runs only the last ``S`` columns; each layer has
room reserved for the columns to come (:class:`ReservedLayer`), so a decoding step
writes its keys in place instead of copying the whole cache. The decoding loop
(:func:`rounds.models.decoding.decode`) takes position ids from the attention mask's
running sum, so every real
token keeps the position it has in its own sequence, matching the rotary-embedded
keys in the cache; the pads in the middle are masked keys that cost attention width,
not correctness. After generation :func:`split_batch_cache` records which of the
batch cache's columns are each row's (its sequence, then the sampled tokens the model
was fed back); the next turn's layout gathers them from there.

A held cache is used only while it is still right (:func:`reusable_length`): its
tokens are a prefix of the episode's sequence (a context cut rebuilds the sequence),
the weights are the ones that computed it (parameters' in-place version counters,
which ``optimizer.step()``, ``load_state_dict`` and ``copy_`` advance) and it sits on
the model's device. Otherwise the episode is prefilled afresh.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

from rounds.models.caches import ReservedLayer


@dataclass(eq=False)
class EpisodeCache:
    """The keys and values of the first ``len(tokens)`` tokens of one episode's sequence:
    row ``row``, columns ``columns`` of the batched cache of the generation that made them.

    The episode's columns are gathered only when its next turn lays out a batch
    (:func:`layout_batch`), straight into that batch's cache: an episode that ends after
    the turn costs no copy, and one that goes on costs one. An episode that sits a round
    out (a slow env step) takes its own copy then (:meth:`own`), so the batched tensors
    of one generation at most are held beyond their round.
    """

    tokens: list[int]
    """The token ids whose keys and values are held, in order."""
    source: list[tuple[torch.Tensor, torch.Tensor]]
    """Per layer, the batch's keys and values, ``[batch, kv_heads, length, head_dim]``."""
    row: int
    columns: torch.Tensor
    """The columns of ``source`` that hold ``tokens``, in order."""
    weights_version: int
    """:func:`weights_version` of the model when these were computed."""

    @property
    def device(self) -> torch.device:
        return self.source[0][0].device

    def own(self) -> None:
        """Copy this episode's columns out of the batch's tensors, and let those go."""
        if self.source[0][0].shape[0] == 1 and len(self.columns) == self.source[0][0].shape[2]:
            return  # already its own
        self.source = [
            (
                keys[self.row : self.row + 1, :, self.columns],
                values[self.row : self.row + 1, :, self.columns],
            )
            for keys, values in self.source
        ]
        self.row = 0
        self.columns = torch.arange(len(self.columns), device=self.columns.device)

    def layer(self, index: int, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values (``[kv_heads, count, head_dim]``) of the first ``count`` tokens."""
        keys, values = self.source[index]
        columns = self.columns[:count]
        return keys[self.row, :, columns], values[self.row, :, columns]


@dataclass
class CacheStats:
    """What the cache saved: tokens read from it against tokens run through the model."""

    reused_tokens: int = 0
    """Prompt tokens whose keys and values came from a held cache."""
    prefilled_tokens: int = 0
    """Prompt tokens the model ran (first turns, new tokens, fresh prefills)."""
    fresh_prefills: Counter[str] = field(default_factory=Counter)
    """Turns after the first that were prefilled from scratch, by reason."""


@dataclass
class CachedBatch:
    """The inputs of one sampling call over episodes that may hold caches."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    cache: Any
    """A ``DynamicCache`` of the held keys and values, or None when no episode holds any."""


def weights_version(model: Any) -> int:
    """A number that changes whenever the model's parameters are changed in place.

    The sum of the parameters' autograd version counters: an optimizer step, a
    ``load_state_dict`` or a ``copy_`` under ``no_grad`` advances them (a write through
    ``param.data`` does not, and is not a supported way to change a policy's weights).
    """
    return sum(int(p._version) for p in model.parameters())


def reusable_length(
    cache: EpisodeCache, ids: list[int], version: int, device: torch.device
) -> tuple[int, str | None]:
    """How many leading tokens of ``ids`` the held ``cache`` covers, and if none, why not.

    At least one token is always left to run, so the model has a position to predict from.
    """
    if cache.weights_version != version:
        return 0, "weights changed"
    if cache.device != device:
        return 0, "model moved to another device"
    held = len(cache.tokens)
    if held > len(ids) or ids[:held] != cache.tokens:
        return 0, "sequence changed"
    return min(held, len(ids) - 1), None


def layout_batch(
    prompts: Sequence[list[int]],
    held: Sequence[tuple[EpisodeCache, int] | None],
    pad_id: int,
    device: Any,
    max_new_tokens: int,
) -> CachedBatch:
    """Rows, attention mask and batched cache for ``prompts``, where ``held[i]`` is episode
    ``i``'s cache and how many of its tokens to use (see the module docstring's layout).

    The cache's layers (:class:`ReservedLayer`) have room for the new columns and
    ``max_new_tokens`` generated ones. With no cache held, ``cache`` is None and the model
    makes its own (of whatever kind it needs)."""
    cached = [0 if h is None else h[1] for h in held]
    width_cached = max(cached)
    width_new = max(len(ids) - c for ids, c in zip(prompts, cached, strict=True))
    rows: list[list[int]] = []
    masks: list[list[int]] = []
    for ids, c in zip(prompts, cached, strict=True):
        new = len(ids) - c
        rows.append(
            [pad_id] * (width_cached - c) + ids[:c] + [pad_id] * (width_new - new) + ids[c:]
        )
        masks.append([0] * (width_cached - c) + [1] * c + [0] * (width_new - new) + [1] * new)
    cache = None
    if width_cached > 0:
        capacity = width_cached + width_new + max_new_tokens
        template = next(h[0] for h in held if h is not None and h[1] > 0)
        layers = []
        for layer, (keys, values) in enumerate(template.source):
            buffers = [
                t.new_zeros((len(prompts), t.shape[1], capacity, t.shape[3]))
                for t in (keys, values)
            ]
            for row, (h, c) in enumerate(zip(held, cached, strict=True)):
                if h is not None and c > 0:
                    for buffer, held_part in zip(buffers, h[0].layer(layer, c), strict=True):
                        buffer[row, :, width_cached - c : width_cached] = held_part
            layers.append(ReservedLayer(buffers[0], buffers[1], width_cached))
        cache = DynamicCache()
        cache.layers = list[Any](layers)  # every layer given: none is added lazily
    return CachedBatch(
        input_ids=torch.tensor(rows, device=device),
        attention_mask=torch.tensor(masks, device=device),
        cache=cache,
    )


def plain_layers(cache: Any) -> list[tuple[torch.Tensor, torch.Tensor]] | None:
    """The per-layer keys and values of a generation's cache, or None when it is not a plain
    full-attention cache (sliding windows, linear or shared layers, no cache at all), whose
    columns could not be cut per episode."""
    layers = getattr(cache, "layers", None)
    plain = (DynamicLayer, ReservedLayer)
    if not layers or any(type(layer) not in plain or layer.keys is None for layer in layers):
        return None
    return [(layer.keys, layer.values) for layer in layers]


def split_batch_cache(
    layers: list[tuple[torch.Tensor, torch.Tensor]],
    attention_mask: torch.Tensor,
    prompts: Sequence[list[int]],
    completions: Sequence[list[int]],
    version: int,
) -> list[EpisodeCache]:
    """Each row's own cache after a generation: its prompt's unpadded columns, then the
    sampled tokens of ``completions[i]`` that the model was fed back (all but the batch's
    last step), as views of the batch's ``layers`` (see :class:`EpisodeCache`)."""

    width = attention_mask.shape[1]
    fed_back = max(0, layers[0][0].shape[2] - width)
    caches = []
    for row, (ids, sampled) in enumerate(zip(prompts, completions, strict=True)):
        kept = min(len(sampled), fed_back)
        columns = torch.cat(
            [
                attention_mask[row].nonzero().squeeze(1),
                torch.arange(width, width + kept, device=attention_mask.device),
            ]
        )
        caches.append(
            EpisodeCache(
                tokens=list(ids) + list(sampled[:kept]),
                source=layers,
                row=row,
                columns=columns,
                weights_version=version,
            )
        )
    return caches
