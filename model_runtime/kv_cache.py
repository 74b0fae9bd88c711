"""The prompt cache: the KV of the previous request, kept for the longest common prefix.

Like llama.cpp's ``cache_prompt``: each keystroke extends or edits the end of the
prompt, so most of the prompt's keys/values are already computed. ``PrefixCache``
remembers which token ids its KV holds, crops to the common prefix with the next
prompt, and the engine prefills only the rest.

The KV itself lives in preallocated buffers (``BufferCache``, gpt-fast style) rather
than transformers' ``DynamicCache``, which concatenates, i.e. allocates the whole
cache anew, on every token. On these machines fresh memory costs ~300 MB/s to touch:
at 1,000 cached tokens of Phi-1 width that was about half of each decode step.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from transformers.cache_utils import Cache, DynamicLayer, StaticLayer


def common_prefix_len(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def _crops(tokens_to_remove: int, initialized: bool) -> bool:
    """transformers' cropping rule: ``crop(-k)`` drops the last k positions (a positive
    argument raises); True when there is something to drop."""
    if tokens_to_remove > 0:
        raise ValueError(f"crop({tokens_to_remove}): use a negative number of positions to remove")
    return tokens_to_remove != 0 and initialized


class BufferLayer(DynamicLayer):
    """One layer's keys and values in a buffer of fixed capacity: [B, H, capacity, D].

    ``keys``/``values`` are views of the first ``length`` positions. Same cropping
    rule as transformers 5.23's ``DynamicLayer``: ``crop(-k)`` drops the last k
    positions, a positive argument raises.
    """

    def __init__(self, capacity: int) -> None:
        super().__init__()
        self.capacity = capacity
        self.length = 0
        self._k: torch.Tensor | None = None
        self._v: torch.Tensor | None = None

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.dtype, self.device = key_states.dtype, key_states.device
        b, h, _, d = key_states.shape
        # torch.empty does not touch the pages: only positions written cost memory.
        self._k = torch.empty(b, h, self.capacity, d, dtype=self.dtype, device=self.device)
        self._v = torch.empty(b, h, self.capacity, d, dtype=value_states.dtype, device=self.device)
        self.is_initialized = True
        self._views()

    def _views(self) -> None:
        assert self._k is not None and self._v is not None
        self.keys = self._k[:, :, : self.length]  # [B, H, length, D]
        self.values = self._v[:, :, : self.length]

    def _grow(self, need: int) -> None:
        assert self._k is not None and self._v is not None
        cap = max(need, 2 * self.capacity)
        k = self._k.new_empty(*self._k.shape[:2], cap, self._k.shape[-1])
        v = self._v.new_empty(*self._v.shape[:2], cap, self._v.shape[-1])
        k[:, :, : self.length].copy_(self._k[:, :, : self.length])
        v[:, :, : self.length].copy_(self._v[:, :, : self.length])
        self._k, self._v, self.capacity = k, v, cap

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        assert self._k is not None and self._v is not None
        n = key_states.shape[-2]
        end = self.length + n
        if end > self.capacity:
            self._grow(end)
        self._k[:, :, self.length : end].copy_(key_states)
        self._v[:, :, self.length : end].copy_(value_states)
        self.length = end
        self._views()
        assert self.keys is not None and self.values is not None
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.length

    def crop(self, tokens_to_remove: int) -> None:
        if not _crops(tokens_to_remove, self.is_initialized):
            return
        self.length = max(0, self.length + tokens_to_remove)
        self._views()

    def reset(self) -> None:
        """Empty, keeping the buffers (the next request does not pay for fresh memory)."""
        self.length = 0
        if self.is_initialized:
            self._views()


class BufferCache(Cache):
    """A transformers ``Cache`` of ``BufferLayer``s, one per decoder layer."""

    def __init__(self, num_layers: int, capacity: int) -> None:
        super().__init__(layers=[BufferLayer(capacity) for _ in range(num_layers)])


class StaticBufferLayer(StaticLayer):
    """transformers' ``StaticLayer`` (full-capacity tensors at fixed addresses, the length
    a device tensor: what CUDA graphs need) plus cropping. Positions past the length
    are hidden by the causal mask and overwritten later, so cropping only moves the
    length back, in place."""

    def crop(self, tokens_to_remove: int) -> None:
        if not _crops(tokens_to_remove, self.is_initialized):
            return
        n = int(self.cumulative_length)
        with torch.inference_mode():  # the length was made under inference mode
            self.cumulative_length.fill_(max(0, n + tokens_to_remove))

    def reset(self) -> None:
        # No zeroing: stale positions are masked; only the length matters.
        if self.is_initialized:
            with torch.inference_mode():
                self.cumulative_length.fill_(0)


class StaticBufferCache(Cache):
    """A ``Cache`` of ``StaticBufferLayer``s: the decode step can be captured as a CUDA graph."""

    def __init__(self, num_layers: int, capacity: int) -> None:
        super().__init__(layers=[StaticBufferLayer(capacity) for _ in range(num_layers)])


class PrefixCache:
    """The KV cache plus the ids whose KV it holds (in order).

    All cropping goes through ``crop_to`` so that the rule lives in one place.
    """

    def __init__(self, config: Any, capacity: int | None = None, static: bool = False) -> None:
        self._layers = int(config.num_hidden_layers)
        self._capacity = capacity or int(getattr(config, "max_position_embeddings", 2048))
        # static: fixed-shape buffers for compiled / CUDA-graph decoding (see engine.py).
        self._kind = StaticBufferCache if static else BufferCache
        self.kv: Cache | None = None  # created at the first request
        self.tokens: list[int] = []

    def __len__(self) -> int:
        return len(self.tokens)

    def drop(self) -> None:
        """Forget everything and give the memory back (after an error, e.g. out of memory)."""
        self.kv = None
        self.tokens = []

    def clear(self) -> None:
        """Forget the cached prefix but keep the buffers (a cold request, without paying
        for fresh memory)."""
        if self.kv is not None:
            self.kv.reset()
        self.tokens = []

    def crop_to(self, n: int) -> None:
        """Keep the first ``n`` positions."""
        drop = len(self.tokens) - max(n, 0)
        if drop > 0 and self.kv is not None:
            self.kv.crop(-drop)
            del self.tokens[max(n, 0) :]

    def reuse(self, prompt_ids: Sequence[int]) -> int:
        """Crop to the longest common prefix with ``prompt_ids``; returns how many prompt
        tokens keep their KV. At least one prompt token is always left to prefill so that
        the engine gets logits for the next position."""
        if self.kv is None:
            self.kv = self._kind(self._layers, self._capacity)
            self.tokens = []
            return 0
        keep = max(0, min(common_prefix_len(self.tokens, prompt_ids), len(prompt_ids) - 1))
        self.crop_to(keep)
        return keep

    def extend(self, ids: Sequence[int]) -> None:
        """Record that the KV of ``ids`` was just appended (by a forward pass)."""
        self.tokens.extend(ids)
        held = int(self.kv.get_seq_length()) if self.kv is not None else 0
        if held != len(self.tokens):
            # Cache and ids disagree: every later answer would be wrong. Never keep it.
            expected = len(self.tokens)
            self.drop()
            raise RuntimeError(f"KV cache holds {held} positions but {expected} ids were recorded")
