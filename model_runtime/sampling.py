"""Choosing the next token: greedy, temperature/top-p, and the forced-prefix constraint.

Pure functions on logits plus ``TokenTable``, the id → bytes table that lets the
engine decode incrementally and constrain the first tokens to a forced text.
"""

from __future__ import annotations

import codecs
from collections import OrderedDict
from functools import lru_cache
from typing import Any

import torch


def greedy(logits: torch.Tensor) -> int:
    """logits: [V] → the id of the largest logit (first one on ties, like ``generate``)."""
    return int(torch.argmax(logits, dim=-1).item())


def sample(
    logits: torch.Tensor,
    temperature: float,
    top_p: float,
    generator: torch.Generator | None = None,
) -> int:
    """logits: [V]. temperature <= 0 means greedy. ``generator`` makes draws repeatable."""
    if temperature <= 0:
        return greedy(logits)
    probs = torch.softmax(logits.float() / temperature, dim=-1)  # [V]
    if 0.0 < top_p < 1.0:
        probs = top_p_filter(probs, top_p)
    return int(torch.multinomial(probs, 1, generator=generator).item())


def top_p_filter(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """Keep the smallest set of most likely tokens whose mass reaches ``top_p``. probs: [V]."""
    sorted_p, order = torch.sort(probs, descending=True)  # [V], [V]
    cum = torch.cumsum(sorted_p, dim=-1)
    # A token stays if the mass *before* it is below top_p: the best one always stays.
    keep_sorted = (cum - sorted_p) < top_p
    keep = torch.zeros_like(probs, dtype=torch.bool)
    keep[order[keep_sorted]] = True
    out = torch.where(keep, probs, torch.zeros_like(probs))
    return out / out.sum()


@lru_cache(maxsize=1)
def _byte_decoder() -> dict[str, int]:
    """GPT-2's byte ↔ printable-unicode map, inverted (byte-level BPE token strings → bytes)."""
    bs = list(range(ord("!"), ord("~") + 1))
    bs += list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs, strict=True)}


class TokenTable:
    """What each token id spells, as bytes, built once per tokenizer.

    Byte-level BPE tokens (GPT-2, CodeGen/Phi-1, the ``tiny`` tokenizer) map to exact
    bytes, so text can be decoded incrementally and a forced prefix matched byte by
    byte. Special tokens spell nothing and are never allowed while forcing.
    """

    def __init__(self, tokenizer: Any, vocab_size: int) -> None:
        self.vocab_size = vocab_size
        special = set(getattr(tokenizer, "all_special_ids", []) or [])
        added = {
            tid: tok.content if hasattr(tok, "content") else str(tok)
            for tid, tok in getattr(tokenizer, "added_tokens_decoder", {}).items()
        }
        n_tok = len(tokenizer)
        pieces = tokenizer.convert_ids_to_tokens(list(range(min(n_tok, vocab_size))))
        bd = _byte_decoder()
        table: list[bytes | None] = []
        exact = True
        for tid in range(vocab_size):
            if tid >= n_tok or tid in special:
                table.append(None)  # ids the model has but the tokenizer never produces
                continue
            if tid in added:
                table.append(added[tid].encode("utf-8"))
                continue
            piece = pieces[tid]
            if piece is not None and all(ch in bd for ch in piece):
                table.append(bytes(bd[ch] for ch in piece))
            else:
                # Not byte-level (e.g. SentencePiece): fall back to decoding the id alone.
                exact = False
                table.append(tokenizer.decode([tid]).encode("utf-8"))
        self.bytes_of = table
        # True when concatenating bytes_of equals tokenizer.decode for any sequence.
        self.exact = exact
        self._masks: OrderedDict[bytes, torch.Tensor] = OrderedDict()

    def allowed_for(self, remaining: bytes) -> torch.Tensor:
        """[V] bool: tokens consistent with the forced bytes still to produce: the token
        spells a prefix of them, or they are a prefix of what the token spells."""
        mask = self._masks.get(remaining)
        if mask is not None:
            self._masks.move_to_end(remaining)
            return mask
        ok = [
            b is not None and len(b) > 0 and (remaining.startswith(b) or b.startswith(remaining))
            for b in self.bytes_of
        ]
        mask = torch.tensor(ok, dtype=torch.bool)
        self._masks[remaining] = mask
        if len(self._masks) > 64:  # forced prefixes repeat (indentation): keep a few
            self._masks.popitem(last=False)
        return mask


class TextDecoder:
    """Incremental detokenizer: feed ids, read ``text``. Holds back an incomplete UTF-8
    sequence at the end (byte-level BPE may split a character across tokens)."""

    def __init__(self, table: TokenTable, tokenizer: Any) -> None:
        self._table = table
        self._tok = tokenizer
        self._ids: list[int] = []
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.text = ""

    def push(self, tid: int) -> str:
        """Add one id; returns the text so far."""
        self._ids.append(tid)
        if self._table.exact:
            b = self._table.bytes_of[tid] if tid < len(self._table.bytes_of) else None
            self.text += self._utf8.decode(b or b"")
        else:  # correct first: re-decode everything for tokenizers we cannot map to bytes
            self.text = self._tok.decode(
                self._ids, skip_special_tokens=True, clean_up_tokenization_spaces=False
            )
        return self.text

    def finish(self) -> str:
        """The final text: an incomplete UTF-8 sequence at the end becomes U+FFFD, as
        ``tokenizer.decode`` renders it."""
        if self._table.exact:
            self.text += self._utf8.decode(b"", final=True)
        return self.text
