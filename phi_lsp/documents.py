"""A text document plus its tree-sitter tree, kept in sync with LSP edits.

Positions follow LSP: 0-based lines, characters counted in UTF-16 code units; lines
end at ``\\n``, ``\\r\\n`` or ``\\r``. Edits are applied incrementally: the old tree is
told about the edit (``Tree.edit``) and the line index recounts only the edited
lines. The reparse is deferred until the tree is read (a request), so a burst of
keystrokes costs one incremental parse, not one each: tree-sitter's incremental
parse still visits every top-level statement (~170 ms on a 5 MB file, with the GIL
held), which is too much per keystroke.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import tree_sitter
import tree_sitter_python

_NEWLINE = re.compile(r"\r\n|\r|\n")
_LONE_CR = re.compile(r"\r(?!\n)")


@lru_cache(maxsize=1)
def python_language() -> tree_sitter.Language:
    return tree_sitter.Language(tree_sitter_python.language())


def new_parser() -> tree_sitter.Parser:
    return tree_sitter.Parser(python_language())


_SLICE = 16_384


def parse_in_slices(
    parser: tree_sitter.Parser, data: bytes, old: tree_sitter.Tree | None = None
) -> tree_sitter.Tree:
    """``parser.parse(data, old)``, read in slices: given bytes, tree-sitter holds the
    GIL for the whole parse (seconds on a 10 MB file); through a read callback it comes
    back to Python every slice, where other threads (the server's event loop) get their
    turn. Same speed."""

    def read(offset: int, _point: tuple[int, int]) -> bytes:
        return data[offset : offset + _SLICE]

    source = data if len(data) <= _SLICE else read
    return parser.parse(source) if old is None else parser.parse(source, old)


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


def indent_of(line: str) -> str:
    """The leading spaces and tabs of ``line``."""
    return line[: len(line) - len(line.lstrip(" \t"))]


def indent_width(ws: str) -> int:
    """Columns of an indentation (tabs to multiples of 8, as Python reads them)."""
    return len(ws.expandtabs(8))


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


class LineIndex:
    """Start offsets of every line, in blocks of at most ``BLOCK`` lines stored relative
    to their block's base: an edit recounts its own lines and shifts the bases of the
    blocks after it, so its cost follows the edit and the number of blocks, not the
    number of lines (a 5 MB file has ~560k lines). For non-ASCII text it also keeps
    each block's UTF-8 byte offset (:meth:`track_bytes`), so that string index ↔ byte
    conversions encode one block, not the whole text before the position."""

    BLOCK = 512

    def __init__(self, starts: list[int]) -> None:
        self._rel: list[list[int]] = []  # per block: starts minus the block's base
        self._bases: list[int] = []  # absolute start of each block's first line
        self._firsts: list[int] = []  # line number of each block's first line
        self._bbases: list[int] | None = None  # byte offset of each block's base
        self._fill(0, starts, 0)

    def _fill(self, at: int, starts: list[int], first_line: int) -> None:
        """Insert blocks for absolute ``starts`` before block ``at``."""
        rel, bases, firsts = [], [], []
        for i in range(0, len(starts), self.BLOCK):
            chunk = starts[i : i + self.BLOCK]
            base = chunk[0]
            rel.append([s - base for s in chunk])
            bases.append(base)
            firsts.append(first_line + i)
        self._rel[at:at] = rel
        self._bases[at:at] = bases
        self._firsts[at:at] = firsts

    def __len__(self) -> int:
        return self._firsts[-1] + len(self._rel[-1])

    def _block(self, line: int) -> int:
        return bisect_right(self._firsts, line) - 1

    def start(self, line: int) -> int:
        b = self._block(line)
        return self._bases[b] + self._rel[b][line - self._firsts[b]]

    def span(self, line: int) -> tuple[int, int]:
        """Start of ``line`` and of the next line (-1 for the last line): one lookup."""
        b = bisect_right(self._firsts, line) - 1
        rel, base, i = self._rel[b], self._bases[b], line - self._firsts[b]
        if i + 1 < len(rel):
            return base + rel[i], base + rel[i + 1]
        if b + 1 < len(self._bases):
            return base + rel[i], self._bases[b + 1]
        return base + rel[i], -1

    def line_of(self, offset: int) -> int:
        """The line holding string index ``offset``."""
        b = bisect_right(self._bases, offset) - 1
        return self._firsts[b] + bisect_right(self._rel[b], offset - self._bases[b]) - 1

    def to_list(self) -> list[int]:
        return [base + r for base, rel in zip(self._bases, self._rel, strict=True) for r in rel]

    def track_bytes(self, text: str) -> None:
        """Start keeping byte offsets (once, when the text stops being ASCII)."""
        bb = [0]
        for k in range(1, len(self._bases)):
            bb.append(bb[-1] + len(text[self._bases[k - 1] : self._bases[k]].encode("utf-8")))
        self._bbases = bb

    @property
    def tracks_bytes(self) -> bool:
        return self._bbases is not None

    def byte_at(self, offset: int, text: str) -> int:
        """UTF-8 byte offset of string index ``offset`` (needs :meth:`track_bytes`)."""
        assert self._bbases is not None
        b = bisect_right(self._bases, offset) - 1
        return self._bbases[b] + len(text[self._bases[b] : offset].encode("utf-8"))

    def index_at_byte(self, byte: int, text: str) -> int:
        """String index of a UTF-8 byte offset (needs :meth:`track_bytes`)."""
        assert self._bbases is not None
        b = bisect_right(self._bbases, byte) - 1
        base = self._bases[b]
        end = self._bases[b + 1] if b + 1 < len(self._bases) else len(text)
        head = text[base:end].encode("utf-8")[: byte - self._bbases[b]]
        return base + len(head.decode("utf-8", errors="replace"))

    def replace(
        self,
        first: int,
        last: int,
        starts: list[int],
        delta: int,
        text: str = "",
        byte_delta: int = 0,
    ) -> None:
        """Starts of lines ``first+1 .. last`` become ``starts`` (absolute, in the new
        ``text``); lines after ``last`` move by ``delta`` characters (``byte_delta``
        bytes)."""
        b0, b1 = self._block(first), self._block(last)
        bb0 = self._bbases[b0] if self._bbases is not None else 0
        old = [self._bases[b] + r for b in range(b0, b1 + 1) for r in self._rel[b]]
        lo, hi = first - self._firsts[b0], last - self._firsts[b0]
        merged = [*old[: lo + 1], *starts, *(s + delta for s in old[hi + 1 :])]
        line_delta = len(merged) - len(old)
        first_line = self._firsts[b0]
        del self._rel[b0 : b1 + 1], self._bases[b0 : b1 + 1], self._firsts[b0 : b1 + 1]
        self._fill(b0, merged, first_line)
        n_new = (len(merged) + self.BLOCK - 1) // self.BLOCK
        for b in range(b0 + n_new, len(self._bases)):
            self._bases[b] += delta
            self._firsts[b] += line_delta
        if self._bbases is not None:
            new_bb = [bb0]  # the block's base is before the edit: same byte offset
            for k in range(b0 + 1, b0 + n_new):
                piece = text[self._bases[k - 1] : self._bases[k]]
                new_bb.append(new_bb[-1] + len(piece.encode("utf-8")))
            self._bbases[b0 : b1 + 1] = new_bb
            for b in range(b0 + n_new, len(self._bases)):
                self._bbases[b] += byte_delta

    def copy(self) -> LineIndex:
        """A copy that later edits of either side do not affect (blocks are replaced
        by edits, never changed in place, so they are shared)."""
        twin = LineIndex.__new__(LineIndex)
        twin._rel, twin._bases, twin._firsts = (
            list(self._rel),
            list(self._bases),
            list(self._firsts),
        )
        twin._bbases = None if self._bbases is None else list(self._bbases)
        return twin


class Document:
    """Text + tree of one file. Not thread-safe: the server applies edits on its loop
    and hands the completer a document it does not mutate while a request runs
    (use :meth:`snapshot` to hand over a copy)."""

    def __init__(self, text: str, version: int = 0, uri: str = "") -> None:
        self.uri = uri
        self.version = version
        self._parser = new_parser()
        self._set_text(text)
        self._tree: tree_sitter.Tree = parse_in_slices(self._parser, self.source_bytes)
        self._stale = False  # edits told to the tree but not parsed yet
        self.full_parses = 1  # counted so that tests and benches can prove reparses are incremental
        self.incremental_parses = 0

    # --- text and positions --------------------------------------------------------
    def _set_text(self, text: str) -> None:
        self.text = text
        self._bytes: bytes | None = text.encode("utf-8")
        self._ascii = text.isascii()
        # A lone "\r" ends an LSP line but not a tree-sitter row: then rows are counted
        # in the bytes (slow path); never set back by an edit (False is the fast path).
        self._lone_cr = _LONE_CR.search(text) is not None
        self._lines = LineIndex([0, *(m.end() for m in _NEWLINE.finditer(text))])
        if not self._ascii:
            self._lines.track_bytes(text)
        self._new_version_caches()

    def _new_version_caches(self) -> None:
        self.cache: dict[str, Any] = {}  # memo for this document object and text
        # Memo shared with snapshots of the same text: plain data only (no tree nodes,
        # no closures over a document), so that it outlives the request that filled it.
        self.shared: dict[Any, Any] = {}

    @property
    def tree(self) -> tree_sitter.Tree:
        """The tree of the current text (parsed now if edits are pending)."""
        if self._stale:
            self._tree = parse_in_slices(self._parser, self.source_bytes, self._tree)
            self._stale = False
            self.incremental_parses += 1
        return self._tree

    @property
    def source_bytes(self) -> bytes:
        if self._bytes is None:  # encoded once per version, when first needed
            self._bytes = self.text.encode("utf-8")
        return self._bytes

    @property
    def line_starts(self) -> list[int]:
        """Every line's start offset (a fresh list: O(lines); prefer :meth:`line_start`)."""
        return self._lines.to_list()

    def line_start(self, line: int) -> int:
        """String index where ``line`` starts (clamped to the document)."""
        return self._lines.start(max(0, min(line, len(self._lines) - 1)))

    @property
    def may_have_lone_cr(self) -> bool:
        """A lone "\\r" (old Mac line end) may be in the text; False means surely not."""
        return self._lone_cr

    @property
    def line_count(self) -> int:
        return len(self._lines)

    def line_text(self, line: int) -> str:
        """Line ``line`` without its line ending."""
        if line < 0 or line >= len(self._lines):
            return ""
        start, end = self._lines.span(line)
        return self.text[start : end if end >= 0 else len(self.text)].rstrip("\r\n")

    def offset_at(self, line: int, character: int) -> int:
        """String index of an LSP position; past-the-end positions clamp to the end."""
        if line < 0:
            return 0
        if line >= len(self._lines):
            return len(self.text)
        return self._lines.start(line) + utf16_to_index(self.line_text(line), character)

    def position_at(self, offset: int) -> tuple[int, int]:
        """LSP (line, UTF-16 character) of a string index."""
        offset = max(0, min(offset, len(self.text)))
        line = self._lines.line_of(offset)
        start = self._lines.start(line)
        return line, index_to_utf16(self.text[start:offset], offset - start)

    def byte_at(self, offset: int) -> int:
        """UTF-8 byte offset of a string index (tree-sitter works in bytes)."""
        return offset if self._ascii else self._lines.byte_at(offset, self.text)

    def index_at_byte(self, byte: int) -> int:
        """String index of a UTF-8 byte offset."""
        return byte if self._ascii else self._lines.index_at_byte(byte, self.text)

    def point_at(self, offset: int) -> tuple[int, int]:
        """tree-sitter (row, byte column) of a string index."""
        return self._point(offset, self.byte_at(offset))

    def _point(self, offset: int, byte: int) -> tuple[int, int]:
        """tree-sitter (row, byte column) of a string index: rows count b"\\n" only."""
        if self._lone_cr:
            data = self.source_bytes
            return data.count(b"\n", 0, byte), byte - (data.rfind(b"\n", 0, byte) + 1)
        line = self._lines.line_of(offset)
        start = self._lines.start(line)
        col = offset - start if self._ascii else len(self.text[start:offset].encode("utf-8"))
        return line, col

    # --- edits -----------------------------------------------------------------
    def apply_change(self, range: Any | None, text: str, version: int | None = None) -> None:
        """Apply one LSP content change: ``range`` None replaces the whole text.

        Costs the edit's size plus one copy of the text (Python strings are
        immutable); the reparse waits for the next read of :attr:`tree`."""
        if version is not None:
            self.version = version
        if range is None:
            self._set_text(text)
            self._tree = parse_in_slices(self._parser, self.source_bytes)
            self._stale = False
            self.full_parses += 1
            return
        (l0, c0), (l1, c1) = _range(range)
        start, end = self.offset_at(l0, c0), self.offset_at(l1, c1)
        if end < start:
            start, end = end, start
        old = self.text
        first, last = self._lines.line_of(start), self._lines.line_of(end)
        start_byte, old_end_byte = self.byte_at(start), self.byte_at(end)
        start_point, old_end_point = self._point(start, start_byte), self._point(end, old_end_byte)
        if not self._lone_cr and (
            _LONE_CR.search(text) is not None or (start > 0 and old[start - 1] == "\r")
        ):
            self._lone_cr = True  # maybe: an edit after "\r" can leave it alone
        new = old[:start] + text + old[end:]
        self.text = new
        self._bytes = None
        self._ascii = self._ascii and text.isascii()
        self._new_version_caches()
        # Recount the edited lines, plus the one before in case a "\r" + "\n" pair joined.
        delta = len(text) - (end - start)
        f = max(0, first - 1)
        a = self._lines.start(f)
        if last + 1 < len(self._lines):
            b = self._lines.start(last + 1) + delta
            ends = [e for e in (m.end() for m in _NEWLINE.finditer(new, a, b)) if e < b]
        else:
            ends = [m.end() for m in _NEWLINE.finditer(new, a)]
        new_end_byte = start_byte + len(text.encode("utf-8"))
        byte_delta = (new_end_byte - start_byte) - (old_end_byte - start_byte)
        self._lines.replace(f, last, ends, delta, new, byte_delta)
        if not self._ascii and not self._lines.tracks_bytes:
            self._lines.track_bytes(new)  # the first non-ASCII character: once
        self._tree.edit(
            start_byte=start_byte,
            old_end_byte=old_end_byte,
            new_end_byte=new_end_byte,
            start_point=start_point,
            old_end_point=old_end_point,
            new_end_point=self._point(start + len(text), new_end_byte),
        )
        self._stale = True

    def apply_changes(self, changes: list[Any], version: int | None = None) -> None:
        """LSP ``didChange`` content changes, in order (dicts or lsprotocol objects)."""
        for ch in changes:
            rng = ch.get("range") if isinstance(ch, Mapping) else getattr(ch, "range", None)
            txt = ch["text"] if isinstance(ch, Mapping) else ch.text
            self.apply_change(rng, txt)
        if version is not None:
            self.version = version

    def snapshot(self) -> Document:
        """An independent copy for a request running in a thread. Parses pending edits
        here first, so that this document's tree stays the base of the next parse;
        shares the immutable text and the ``shared`` memo, copies nothing per line."""
        tree = self.tree
        doc = Document.__new__(Document)
        doc.uri, doc.version = self.uri, self.version
        doc._parser = new_parser()
        doc.text, doc._bytes, doc._ascii = self.text, self._bytes, self._ascii
        doc._lone_cr = self._lone_cr
        doc._lines = self._lines.copy()
        doc.cache, doc.shared = {}, self.shared
        doc._tree, doc._stale = tree.copy(), False
        doc.full_parses, doc.incremental_parses = self.full_parses, self.incremental_parses
        return doc
