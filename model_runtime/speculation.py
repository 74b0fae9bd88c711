"""Prompt-lookup speculative decoding, the parts that are not the model.

A draft is the continuation of the longest recent n-gram that occurred earlier in the
context (code repeats itself: names, calls, the docstring's examples), verified by one
forward pass of all draft tokens; greedy output is unchanged. ``NgramIndex`` finds the
draft with a dict lookup per step, ``Drafting`` sizes the next draft from the last
acceptance, ``SpecCost`` learns whether drafting pays on this device (on a CPU a
9-token forward costs about three single steps).
"""

from __future__ import annotations

from collections.abc import Sequence


class NgramIndex:
    """Where each 1..``max_ngram``-gram of the context starts, for prompt lookup: a draft
    costs a dict lookup instead of a scan of the whole context (which, at 1,000 tokens,
    cost as much as a ``tiny`` decode step). Indexing is lazy, done at the first draft,
    so requests that never draft never pay for it.

    A draft: find an earlier occurrence of the context's last n-gram (longest n first)
    and propose the ``k`` tokens that followed it. The latest match wins (code repeats
    what it just wrote), unless it is too close to the end to offer ``k`` tokens; then
    an older match that does."""

    def __init__(self, ids: Sequence[int], max_ngram: int = 3) -> None:
        self.max_ngram = max_ngram
        self.ctx: list[int] = list(ids)
        self.starts: dict[tuple[int, ...], list[int]] = {}
        self._indexed = 0  # context positions whose n-grams (ending there) are indexed

    def append(self, tok: int) -> None:
        self.ctx.append(tok)

    def _catch_up(self) -> None:
        ctx = self.ctx
        for end in range(self._indexed + 1, len(ctx) + 1):
            for n in range(1, min(self.max_ngram, end) + 1):
                self.starts.setdefault(tuple(ctx[end - n : end]), []).append(end - n)
        self._indexed = len(ctx)

    def draft(self, k: int, min_ngram: int = 1) -> list[int]:
        self._catch_up()
        ctx, n_ctx = self.ctx, len(self.ctx)
        for n in range(min(self.max_ngram, n_ctx - 1), min_ngram - 1, -1):
            best: list[int] = []
            for start in reversed(self.starts.get(tuple(ctx[n_ctx - n :]), ())):
                if start >= n_ctx - n:
                    continue  # the tail itself
                follow = ctx[start + n : start + n + k]
                if len(follow) > len(best):
                    best = follow
                if len(best) == k:
                    break
            if best:
                return best
        return []


class Drafting:
    """How much to speculate, adapted within a request. Every verify forward carries the
    drafts' extra positions: after drafts that the model rejects outright, stop drafting
    for a while (longer each time); after drafts accepted in full, draft more."""

    def __init__(self, max_k: int) -> None:
        self.max_k = max(1, max_k)
        self.k = self.max_k
        self.proposed = 0  # drafts in the cycle being verified
        self.accepted = 0
        self.misses = 0  # consecutive cycles with nothing accepted
        self.cooldown = 0  # plain forwards left before drafting again

    def wants_draft(self) -> bool:
        if self.cooldown > 0:
            self.cooldown -= 1
            return False
        return True

    def start(self, n: int) -> None:
        self.proposed, self.accepted = n, 0

    def settle(self) -> None:
        """The cycle ended (a draft differed, or all were used)."""
        if self.accepted == 0:
            self.misses += 1
            if self.misses >= 2:
                self.cooldown = 4 << min(self.misses - 2, 4)  # 4, 8, ... 64 tokens
        else:
            self.misses = 0
        if self.proposed and self.accepted == self.proposed:
            self.k = min(self.max_k, self.k * 2)
        else:
            self.k = max(1, min(self.max_k, self.accepted + 1))
        self.proposed = self.accepted = 0


class SpecCost:
    """Is a verify pass worth it on this machine? Learnt across requests from timings.

    A verify pass of 1 + k tokens yields ``gain`` tokens (1 + accepted drafts). On a GPU
    it costs about one decode step; on a CPU, measured at Phi-1 width, a 2-token forward
    costs 2 one-token steps and a 9-token one 3 (matrix-vector vs matrix-matrix
    kernels), so drafting pays only where the model accepts several drafts per pass.
    """

    ALPHA = 0.3  # weight of the newest observation
    RECHECK = 32  # plain steps between two trial passes once drafting looked unprofitable

    def __init__(self) -> None:
        self.single_ms: float | None = None
        self.verify_ms: float | None = None
        self.gain: float | None = None
        self._since_trial = 0

    def _ema(self, old: float | None, new: float) -> float:
        return new if old is None else old + self.ALPHA * (new - old)

    def observe_single(self, ms: float) -> None:
        self.single_ms = self._ema(self.single_ms, ms)

    def observe_verify(self, ms: float) -> None:
        self.verify_ms = self._ema(self.verify_ms, ms)

    def observe_gain(self, tokens: int) -> None:
        self.gain = self._ema(self.gain, float(tokens))

    def worth_it(self) -> bool:
        if self.single_ms is None or self.verify_ms is None or self.gain is None:
            return True  # not measured yet: try
        if self.gain / self.verify_ms >= 1.05 / self.single_ms:
            return True
        self._since_trial += 1
        if self._since_trial >= self.RECHECK:  # the text may have become repetitive
            self._since_trial = 0
            return True
        return False
