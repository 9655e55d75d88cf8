"""The hf engine's KV cache pieces: a cache layer that grows in place, and left padding to join
caches of different lengths (selfplay.engines.hf.Batch)."""

from __future__ import annotations

import functools

import torch


@functools.cache
def growing_layer():
    """transformers' DynamicLayer, whose keys and values live in a buffer with room to the right:
    a decode step writes its one column in place instead of copying the whole cache
    (DynamicLayer's torch.cat took about a quarter of decode time). Defined on first use, so
    importing this module does not import transformers."""
    from transformers.cache_utils import DynamicLayer

    class GrowingLayer(DynamicLayer):
        ROOM = 64

        def hold(self, keys: torch.Tensor, values: torch.Tensor) -> None:
            """Take these as the layer's keys and values, copied into a buffer with room to grow."""
            length, room = keys.shape[2], max(self.ROOM, keys.shape[2])
            self._keys = keys.new_empty((*keys.shape[:2], length + room, keys.shape[3]))
            self._values = values.new_empty((*values.shape[:2], length + room, values.shape[3]))
            self._keys[:, :, :length], self._values[:, :, :length] = keys, values
            self.keys, self.values = self._keys[:, :, :length], self._values[:, :, :length]

        def update(self, key_states, value_states, *args, **kwargs):
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
                self.hold(key_states, value_states)
                return self.keys, self.values
            length, added = self.keys.shape[2], key_states.shape[2]
            if length + added > self._keys.shape[2]:
                self.hold(self.keys, self.values)
            self._keys[:, :, length : length + added] = key_states
            self._values[:, :, length : length + added] = value_states
            self.keys, self.values = self._keys[:, :, : length + added], self._values[:, :, : length + added]
            return self.keys, self.values

    return GrowingLayer


def left_pad(t: torch.Tensor, width: int, dim: int) -> torch.Tensor:
    missing = width - t.shape[dim]
    if missing == 0:
        return t
    shape = list(t.shape)
    shape[dim] = missing
    return torch.cat([t.new_zeros(shape), t], dim=dim)
