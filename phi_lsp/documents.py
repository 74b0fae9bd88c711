"""A text document plus its tree-sitter tree, kept in sync with LSP edits.

Positions follow LSP: 0-based lines, characters counted in UTF-16 code units; lines
end at ``\\n``, ``\\r\\n`` or ``\\r``. Edits are applied incrementally: the old tree is
told about the edit (``Tree.edit``) and the new one is parsed from it, so a
keystroke in a 5,000-line file costs a fraction of a full parse.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import tree_sitter
import tree_sitter_python

_NEWLINE = re.compile(r"\r\n|\r|\n")


@lru_cache(maxsize=1)
def python_language() -> tree_sitter.Language:
    return tree_sitter.Language(tree_sitter_python.language())


def new_parser() -> tree_sitter.Parser:
    return tree_sitter.Parser(python_language())


def parse(text: str) -> tree_sitter.Tree:
    """A full parse of ``text`` (tests and one-off callers)."""
    return new_parser().parse(text.encode("utf-8"))


def _position(p: Any) -> tuple[int, int]:
    """(line, character) from an LSP Position given as a dict, an object or a pair."""
    if isinstance(p, Mapping):
        return int(p["line"]), int(p["character"])
    if isinstance(p, (tuple, list)):
        return int(p[0]), int(p[1])
    return int(p.line), int(p.character)


def _range(r: Any) -> tuple[tuple[int, int], tuple[int, int]]:
    if isinstance(r, Mapping):
        return _position(r["start"]), _position(r["end"])
    if isinstance(r, (tuple, list)):
        return _position(r[0]), _position(r[1])
    return _position(r.start), _position(r.end)


def utf16_to_index(line: str, character: int) -> int:
    """Index into ``line`` (code points) of a UTF-16 column; clamped to the line."""
    if line.isascii():
        return max(0, min(character, len(line)))
    units = 0
    for i, ch in enumerate(line):
        if units >= character:
            return i
        units += 2 if ord(ch) > 0xFFFF else 1
    return len(line)


def index_to_utf16(line: str, index: int) -> int:
    head = line[:index]
    if head.isascii():
        return len(head)
    return len(head) + sum(1 for ch in head if ord(ch) > 0xFFFF)


def _shift_lines(
    old: list[int], text: str, l0: int, l1: int, removed: int, inserted: int
) -> list[int]:
    """Line starts after replacing lines l0..l1 (clamped positions): recount only the
    edited lines (plus the one before, in case a "\r" + "\n" pair joined), shift the rest."""
    l0 = max(0, min(l0, len(old) - 1) - 1)
    l1 = min(l1, len(old) - 1)
    delta = inserted - removed
    a = old[l0]
    if l1 + 1 < len(old):
        b = old[l1 + 1] + delta
        ends = [e for e in (m.end() for m in _NEWLINE.finditer(text, a, b)) if e < b]
        return [*old[: l0 + 1], *ends, *(s + delta for s in old[l1 + 1 :])]
    ends = [m.end() for m in _NEWLINE.finditer(text, a)]
    return [*old[: l0 + 1], *ends]


class Document:
    """Text + tree of one file. Not thread-safe: the server applies edits on its loop
    and hands the completer a document it does not mutate while a request runs
    (use :meth:`snapshot` to hand over a copy)."""

    def __init__(self, text: str, version: int = 0, uri: str = "") -> None:
        self.uri = uri
        self.version = version
        self._parser = new_parser()
        self._set_text(text)
        self.tree: tree_sitter.Tree = self._parser.parse(self._bytes)
        self.full_parses = 1  # counted so that tests and benches can prove reparses are incremental
        self.incremental_parses = 0

    # --- text and positions --------------------------------------------------------
    def _set_text(self, text: str) -> None:
        self.text = text
        self._bytes = text.encode("utf-8")
        self._ascii = len(self._bytes) == len(text)
        self._line_starts: list[int] | None = None  # computed on demand
        self.cache: dict[str, Any] = {}  # per-version memo for context extraction

    @property
    def source_bytes(self) -> bytes:
        return self._bytes

    @property
    def line_starts(self) -> list[int]:
        if self._line_starts is None:
            self._line_starts = [0, *(m.end() for m in _NEWLINE.finditer(self.text))]
        return self._line_starts

    @property
    def line_count(self) -> int:
        return len(self.line_starts)

    def line_text(self, line: int) -> str:
        """Line ``line`` without its line ending."""
        starts = self.line_starts
        if line < 0 or line >= len(starts):
            return ""
        end = starts[line + 1] if line + 1 < len(starts) else len(self.text)
        return self.text[starts[line] : end].rstrip("\r\n")

    def offset_at(self, line: int, character: int) -> int:
        """String index of an LSP position; past-the-end positions clamp to the end."""
        starts = self.line_starts
        if line < 0:
            return 0
        if line >= len(starts):
            return len(self.text)
        return starts[line] + utf16_to_index(self.line_text(line), character)

    def position_at(self, offset: int) -> tuple[int, int]:
        """LSP (line, UTF-16 character) of a string index."""
        from bisect import bisect_right

        offset = max(0, min(offset, len(self.text)))
        line = bisect_right(self.line_starts, offset) - 1
        start = self.line_starts[line]
        return line, index_to_utf16(self.text[start:], offset - start)

    def byte_at(self, offset: int) -> int:
        """UTF-8 byte offset of a string index (tree-sitter works in bytes)."""
        return offset if self._ascii else len(self.text[:offset].encode("utf-8"))

    def index_at_byte(self, byte: int) -> int:
        """String index of a UTF-8 byte offset."""
        if self._ascii:
            return byte
        return len(self._bytes[:byte].decode("utf-8", errors="replace"))

    def _point(self, byte: int) -> tuple[int, int]:
        # tree-sitter's rows count b"\n" only; columns are bytes.
        row = self._bytes.count(b"\n", 0, byte)
        return row, byte - (self._bytes.rfind(b"\n", 0, byte) + 1)

    # --- edits -----------------------------------------------------------------
    def apply_change(self, range: Any | None, text: str, version: int | None = None) -> None:
        """Apply one LSP content change: ``range`` None replaces the whole text."""
        if version is not None:
            self.version = version
        if range is None:
            self._set_text(text)
            self.tree = self._parser.parse(self._bytes)
            self.full_parses += 1
            return
        (l0, c0), (l1, c1) = _range(range)
        start, end = self.offset_at(l0, c0), self.offset_at(l1, c1)
        if end < start:
            start, end = end, start
        start_byte, old_end_byte = self.byte_at(start), self.byte_at(end)
        start_point, old_end_point = self._point(start_byte), self._point(old_end_byte)
        old_starts = self.line_starts
        first, last = self.position_at(start)[0], self.position_at(end)[0]
        self._set_text(self.text[:start] + text + self.text[end:])
        # Recount only the edited lines: a keystroke must not rescan 5,000 lines.
        self._line_starts = _shift_lines(old_starts, self.text, first, last, end - start, len(text))
        new_end_byte = start_byte + len(text.encode("utf-8"))
        self.tree.edit(
            start_byte=start_byte,
            old_end_byte=old_end_byte,
            new_end_byte=new_end_byte,
            start_point=start_point,
            old_end_point=old_end_point,
            new_end_point=self._point(new_end_byte),
        )
        self.tree = self._parser.parse(self._bytes, self.tree)
        self.incremental_parses += 1

    def apply_changes(self, changes: list[Any], version: int | None = None) -> None:
        """LSP ``didChange`` content changes, in order (dicts or lsprotocol objects)."""
        for ch in changes:
            rng = ch.get("range") if isinstance(ch, Mapping) else getattr(ch, "range", None)
            txt = ch["text"] if isinstance(ch, Mapping) else ch.text
            self.apply_change(rng, txt)
        if version is not None:
            self.version = version

    def snapshot(self) -> Document:
        """An independent copy (shares nothing mutable) for a request running in a thread."""
        doc = Document.__new__(Document)
        doc.uri, doc.version = self.uri, self.version
        doc._parser = new_parser()
        doc._set_text(self.text)
        doc._line_starts = self._line_starts
        doc.tree = self.tree.copy()
        doc.full_parses, doc.incremental_parses = self.full_parses, self.incremental_parses
        return doc
