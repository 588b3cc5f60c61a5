"""KV caches: layers with room reserved for the tokens still to come, and how a model's
forward takes and returns its cache (the name changed in transformers 5).

transformers' ``DynamicLayer`` grows by concatenation: every decoding step copies the
whole layer to append one column, so a reply's cost grows with the square of the
context. Measured on the ~30M model of ``benchmarks/rollout.py`` (4 rows, 24 decoding
steps, CPU): at a 4,000-token context the concatenations took 76% of a step (152 ms a
step, 2.6 ms a ``cat``). A :class:`ReservedLayer` writes each step's keys in place.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from transformers.cache_utils import DynamicLayer


class ReservedLayer(DynamicLayer):
    """A full-attention cache layer with room reserved for the columns still to come.

    ``keys`` and ``values`` are views of the filled columns; a method that replaces them
    (``crop``, a batch selection) is honoured, since the next update reseats the buffers
    on them. Past the reserved room the buffers grow by at least double.
    """

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, length: int) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # untyped in transformers
        self.device = keys.device
        self.is_initialized = True
        self._seat(keys, values, length)

    def _seat(self, keys: torch.Tensor, values: torch.Tensor, length: int) -> None:
        self._keys, self._values, self._length = keys, values, length
        self.keys, self.values = keys[:, :, :length], values[:, :, :length]

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        keys, values = self.keys, self.values
        assert keys is not None and values is not None  # set since __init__
        seated = keys.data_ptr() == self._keys.data_ptr() and keys.shape[2] == self._length
        if not seated:  # keys were replaced: reserve room after them again
            self._seat(keys, values, keys.shape[2])
        end = self._length + key_states.shape[2]
        if end > self._keys.shape[2]:  # more than reserved: grow by at least double
            grow = (0, 0, 0, max(end, 2 * self._keys.shape[2]) - self._keys.shape[2])
            self._keys = torch.nn.functional.pad(self._keys, grow)
            self._values = torch.nn.functional.pad(self._values, grow)
        self._keys[:, :, self._length : end] = key_states
        self._values[:, :, self._length : end] = value_states
        self._seat(self._keys, self._values, end)
        return self._keys[:, :, :end], self._values[:, :, :end]

    @classmethod
    def around(
        cls, layer: DynamicLayer, room: int, rows: torch.Tensor | None = None
    ) -> ReservedLayer:
        """A reserved layer holding ``layer``'s keys and values, with ``room`` more columns;
        with ``rows``, its batch rows in that order (a row may be repeated)."""
        keys, values = layer.keys, layer.values
        assert keys is not None and values is not None
        length = keys.shape[2]
        buffers = []
        for held in (keys, values):
            if rows is not None:
                held = held.index_select(0, rows)
            buffer = held.new_empty((held.shape[0], held.shape[1], length + room, held.shape[3]))
            buffer[:, :, :length] = held
            buffers.append(buffer)
        return cls(buffers[0], buffers[1], length)


def is_plain(cache: Any) -> bool:
    """Whether every layer of ``cache`` is a filled full-attention layer (``DynamicLayer`` or
    :class:`ReservedLayer`; no sliding windows, linear attention or shared layers), whose
    rows and columns can be copied and rearranged freely."""
    layers: list[Any] = getattr(cache, "layers", None) or []
    return bool(layers) and all(
        type(layer) in (DynamicLayer, ReservedLayer)
        and layer.is_initialized
        and layer.keys is not None
        for layer in layers
    )


def reserve(cache: Any, room: int, rows: torch.Tensor | None = None) -> None:
    """Give each plain full-attention layer of ``cache`` room for ``room`` more columns, in
    place; other layers (sliding windows, linear attention) keep their own kind. ``rows``
    (only for a cache that :func:`is_plain`) rearranges the batch as it copies."""
    layers = getattr(cache, "layers", None) or []
    for i, layer in enumerate(layers):
        plain = type(layer) is DynamicLayer or (rows is not None and type(layer) is ReservedLayer)
        if plain and layer.is_initialized and layer.keys is not None:
            layers[i] = ReservedLayer.around(layer, room, rows)


def cache_keyword(module: Any) -> str:
    """The name a model's (or decoder's) forward takes its cache by: ``cache``
    (transformers 5) or ``past_key_values`` (older models and releases)."""
    return "cache" if "cache" in forward_parameters(module) else "past_key_values"


def returned_cache(out: Any, keyword: str) -> Any:
    """The cache a forward's output carries, under ``keyword`` or the older name."""
    cache = getattr(out, keyword, None)
    return cache if cache is not None else getattr(out, "past_key_values", None)


def forward_parameters(module: Any) -> set[str]:
    return set(inspect.signature(module.forward).parameters)
