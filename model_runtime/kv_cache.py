"""The prompt cache: the KV of the previous request, kept for the longest common prefix.

Like llama.cpp's ``cache_prompt``: each keystroke extends or edits the end of the
prompt, so most of the prompt's keys/values are already computed. ``PrefixCache``
remembers which token ids its KV holds, crops to the common prefix with the next
prompt, and the engine prefills only the rest.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def common_prefix_len(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


class PrefixCache:
    """A transformers ``DynamicCache`` plus the ids whose KV it holds (in order).

    transformers 5.23: ``DynamicCache.crop(n)`` with n > 0 raises; ``crop(-k)`` drops
    the last k positions. All cropping goes through ``crop_to`` so that the rule lives
    in one place.
    """

    def __init__(self, config: Any) -> None:
        self._config = config
        self.kv: Any = None  # DynamicCache, created lazily
        self.tokens: list[int] = []

    def __len__(self) -> int:
        return len(self.tokens)

    def reset(self) -> None:
        """Forget everything (after an error, or to measure a cold request)."""
        self.kv = None
        self.tokens = []

    def fresh(self) -> Any:
        from transformers import DynamicCache

        self.kv = DynamicCache(config=self._config)
        self.tokens = []
        return self.kv

    def crop_to(self, n: int) -> None:
        """Keep the first ``n`` positions."""
        if n <= 0:
            self.fresh()
            return
        drop = len(self.tokens) - n
        if drop > 0:
            self.kv.crop(-drop)
            del self.tokens[n:]

    def reuse(self, prompt_ids: Sequence[int]) -> int:
        """Crop to the longest common prefix with ``prompt_ids``; returns how many prompt
        tokens keep their KV. At least one prompt token is always left to prefill so that
        the engine gets logits for the next position."""
        if self.kv is None:
            self.fresh()
            return 0
        keep = min(common_prefix_len(self.tokens, prompt_ids), len(prompt_ids) - 1)
        self.crop_to(keep)
        return max(keep, 0)

    def extend(self, ids: Sequence[int]) -> None:
        """Record that the KV of ``ids`` was just appended (by a forward pass)."""
        self.tokens.extend(ids)
        held = self.kv.get_seq_length() if self.kv is not None else 0
        if held != len(self.tokens):
            # Cache and ids disagree: every later answer would be wrong. Never keep it.
            expected = len(self.tokens)
            self.reset()
            raise RuntimeError(f"KV cache holds {held} positions but {expected} ids were recorded")
