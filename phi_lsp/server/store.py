"""The server's open documents: text, pending edits, the typed-ahead answer.

Edits arrive on the event loop and are only queued there (one keystroke after
another coalesces into one edit). Everything that parses — opening a document, a
whole-text change, the reparse after edits — runs on the "phi-parse" threads (one
document at a time each, its edits in arrival order), so the loop never waits for
tree-sitter (which gives the GIL back between slices, ``documents.parse_in_slices``),
and a big file's parse does not hold up another file's request; a request gets a
snapshot made there. Documents over ``MAX_PARSED_CHARS`` are kept as plain text
(edits still apply, so they can shrink back) but never parsed.

The typed-ahead answer: when the user types the beginning of the suggestion last
shown, the rest is answered from it without a reparse, a context or the model.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import dataclasses
import functools
import logging
import re
import threading

from phi_lsp.completion import Completion
from phi_lsp.documents import Document, utf16_to_index

log = logging.getLogger("phi_lsp.server.store")

MAX_PARSED_CHARS = 10_000_000  # ~10 MB: kept, not parsed for completions
FLUSH_DELAY_S = 0.3  # typing paused this long: apply the pending edits
Position = tuple[int, int]
LspRange = dict[str, dict[str, int]]


@dataclasses.dataclass
class Edit:
    """One pending content change; ``start`` None replaces the whole text."""

    start: Position | None
    end: Position | None
    text: str

    def as_range(self) -> LspRange | None:
        if self.start is None or self.end is None:
            return None
        return {
            "start": {"line": self.start[0], "character": self.start[1]},
            "end": {"line": self.end[0], "character": self.end[1]},
        }

    def extends(self, line: int, character: int) -> bool:
        """Is an insertion at (line, character) typed right after this insertion?"""
        return (
            self.start is not None
            and self.start == self.end
            and self.start[0] == line
            and self.start[1] + utf16_len(self.text) == character
            and "\n" not in self.text
            and "\r" not in self.text
        )


@dataclasses.dataclass
class Shown:
    """The last suggestion answered for a document, anchored at its cursor."""

    line: int
    character: int
    completion: Completion
    version: int


@dataclasses.dataclass(eq=False)
class Entry:
    """One open document. ``version``/``pending``/``warned`` belong to the loop;
    ``queue`` hands batches of edits to the parse threads; ``doc``/``text``/``applied``
    belong to whichever parse thread holds ``lock`` (``doc`` None: over the size
    limit, ``text`` holds it)."""

    uri: str
    version: int
    pending: list[Edit]
    warned: bool = False  # told the user it is over the size limit
    queue: collections.deque[tuple[list[Edit], int]] = dataclasses.field(
        default_factory=collections.deque
    )
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)
    doc: Document | None = None
    text: str = ""
    applied: int = 0  # the version the parse side has reached
    tail: asyncio.Future[None] | None = None  # the loop's last drain job for it


# What a parse job gives back: (a snapshot or None, the version reached, size in characters)
Drained = tuple[Document | None, int, int]


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """A request's view of a document: a copy it may read while edits go on."""

    entry: Entry
    version: int
    doc: Document | None  # None: the document is over the size limit
    size: int


class DocumentStore:
    def __init__(self) -> None:
        self._entries: dict[str, Entry] = {}
        self._shown: dict[str, Shown] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[Drained]] = set()
        self._parser = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="phi-parse")

    def get(self, uri: str) -> Entry | None:
        return self._entries.get(uri)

    def is_current(self, snap: Snapshot) -> bool:
        """No edit or reopen since the snapshot was taken."""
        return self._entries.get(snap.entry.uri) is snap.entry and snap.entry.version == (
            snap.version
        )

    # --- edits (event loop) ---------------------------------------------------------

    def open(self, uri: str, text: str, version: int) -> Entry:
        self.close(uri)
        entry = self._entries[uri] = Entry(uri, version, [Edit(None, None, text)])
        self._apply_soon(entry)  # parse now, on the parse thread
        return entry

    def add_edits(self, uri: str, version: int, edits: list[Edit]) -> bool:
        """Queue ``edits`` (False: the document is not open)."""
        entry = self._entries.get(uri)
        if entry is None:
            return False
        pending = entry.pending
        for edit in edits:
            if edit.start is None:
                pending[:] = [edit]
                continue
            last = pending[-1] if pending else None
            plain = "\n" not in edit.text and "\r" not in edit.text
            if last is not None and edit.start == edit.end and plain and last.extends(*edit.start):
                last.text += edit.text  # one keystroke after another: one edit, one reparse
            else:
                pending.append(edit)
        entry.version = version
        self._schedule_flush(uri)
        return True

    def close(self, uri: str) -> None:
        self._entries.pop(uri, None)
        self._shown.pop(uri, None)
        timer = self._timers.pop(uri, None)
        if timer is not None:
            timer.cancel()

    def forget_shown(self, uri: str | None = None) -> None:
        if uri is None:
            self._shown.clear()
        else:
            self._shown.pop(uri, None)

    def show(self, uri: str, shown: Shown) -> None:
        self._shown[uri] = shown

    async def snapshot(self, uri: str) -> Snapshot | None:
        """The document with every edit so far applied (None if not open)."""
        entry = self._entries.get(uri)
        if entry is None:
            return None
        self._take_pending(entry)
        doc, version, size = await self._drain(entry, snapshot=True)
        return Snapshot(entry, version, doc, size)

    async def _drain(self, entry: Entry, *, snapshot: bool) -> Drained:
        """``_drain`` on a parse thread, after the entry's previous one: a document
        waiting for its own earlier parse must not hold a thread other files need."""
        loop = asyncio.get_running_loop()
        before, entry.tail = entry.tail, loop.create_future()
        mine = entry.tail
        try:
            if before is not None:
                await asyncio.shield(before)
            call = functools.partial(_drain, entry, snapshot=snapshot)
            return await loop.run_in_executor(self._parser, call)
        finally:
            mine.set_result(None)
            if entry.tail is mine:
                entry.tail = None

    def flush_now(self, uri: str) -> None:
        """Apply the pending edits in the background (typing paused)."""
        entry = self._entries.get(uri)
        if entry is not None:
            self._apply_soon(entry)

    def close_all(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        self._parser.shutdown(wait=False, cancel_futures=True)

    def _apply_soon(self, entry: Entry) -> None:
        if not self._take_pending(entry):
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # no loop (in-process tests): straight to a parse thread
            with contextlib.suppress(RuntimeError):  # shut down: nothing left to parse
                self._parser.submit(_drain, entry, snapshot=False).add_done_callback(_log_failure)
            return
        task = asyncio.ensure_future(self._drain(entry, snapshot=False))
        self._tasks.add(task)
        task.add_done_callback(self._drained)

    def _drained(self, task: asyncio.Task[Drained]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("applying edits failed", exc_info=task.exception())

    def _take_pending(self, entry: Entry) -> bool:
        """Hand the pending edits to the parse side (False: there were none)."""
        timer = self._timers.pop(entry.uri, None)
        if timer is not None:
            timer.cancel()
        edits, entry.pending = entry.pending, []
        if not edits:
            return False
        self._rebase_shown(entry.uri, edits, entry.version)
        entry.queue.append((edits, entry.version))
        return True

    def _schedule_flush(self, uri: str) -> None:
        timer = self._timers.pop(uri, None)
        if timer is not None:
            timer.cancel()
        with contextlib.suppress(RuntimeError):  # no loop: applied on next use
            loop = asyncio.get_running_loop()
            self._timers[uri] = loop.call_later(FLUSH_DELAY_S, self.flush_now, uri)

    # --- the typed-ahead answer -------------------------------------------------------

    def _rebase_shown(self, uri: str, pending: list[Edit], version: int) -> None:
        """Typed-ahead text becomes part of the document: move the anchor past it."""
        shown = self._shown.pop(uri, None)
        typed = _typed_into(shown, pending)
        if shown is None or typed is None:
            return
        rest = shown.completion.text[len(typed) :]
        if rest.strip():
            self._shown[uri] = Shown(
                shown.line,
                shown.character + utf16_len(typed),
                dataclasses.replace(shown.completion, text=rest),
                version,
            )

    def typed_ahead(self, uri: str, line: int, character: int) -> Completion | None:
        """The rest of the last suggestion if the user typed its beginning, else None.

        Needs no reparse, no context and no model: the typed text is checked against
        the pending (not yet applied) edit.
        """
        shown = self._shown.get(uri)
        entry = self._entries.get(uri)
        if shown is None or entry is None or line != shown.line:
            return None
        if not entry.pending:  # the same request again, nothing typed
            same = entry.version == shown.version and character == shown.character
            return shown.completion if same else None
        typed = _typed_into(shown, entry.pending)
        if typed is None or character != shown.character + utf16_len(typed):
            return None
        rest = shown.completion.text[len(typed) :]
        if not rest.strip():
            return None
        pos = {"line": line, "character": character}
        return dataclasses.replace(
            shown.completion,
            text=rest,
            range={"start": pos, "end": dict(pos)},
            latency_ms=0.0,
        )


# --- the parse thread -------------------------------------------------------------------


def _drain(entry: Entry, *, snapshot: bool = True) -> Drained:
    """Apply every batch queued for the entry, in order (parse threads only); then
    (a snapshot or None, the version reached, the size in characters)."""
    with entry.lock:
        while entry.queue:
            edits, version = entry.queue.popleft()
            for edit in edits:
                try:
                    _apply_one(entry, edit)
                except Exception:
                    log.exception(
                        "could not apply an edit to %s; its text may be out of date", entry.uri
                    )
            entry.applied = version
        doc = entry.doc
        if doc is None:
            return None, entry.applied, len(entry.text)
        doc.version = entry.applied
        return (doc.snapshot() if snapshot else None), entry.applied, len(doc.text)


def _apply_one(entry: Entry, edit: Edit) -> None:
    text = valid_text(edit.text)
    doc = entry.doc
    if edit.start is None:
        entry.doc, entry.text = None, ""
        if len(text) > MAX_PARSED_CHARS:
            entry.text = text
        else:
            entry.doc = Document(text, 0, entry.uri)
        return
    if doc is not None:
        doc.apply_change(edit.as_range(), text)
        if len(doc.text) > MAX_PARSED_CHARS:  # grew past the limit: stop parsing it
            entry.doc, entry.text = None, doc.text
        return
    assert edit.end is not None
    old = entry.text
    a, b = _offset(old, *edit.start), _offset(old, *edit.end)
    entry.text = old[: min(a, b)] + text + old[max(a, b) :]
    if len(entry.text) <= MAX_PARSED_CHARS:  # shrank under the limit: parse it again
        entry.doc, entry.text = Document(entry.text, 0, entry.uri), ""


def _offset(text: str, line: int, character: int) -> int:
    """String index of an LSP position in ``text`` (the over-the-limit path: one regex
    skips ``line`` lines in C)."""
    m = re.compile(r"(?:[^\r\n]*(?:\r\n|\r|\n)){" + str(line) + "}").match(text) if line else None
    if line and m is None:
        return len(text)
    start = m.end() if m is not None else 0
    eol = _EOL.search(text, start)
    end = eol.start() if eol is not None else len(text)
    return start + utf16_to_index(text[start:end], character)


def _log_failure(fut: concurrent.futures.Future[Drained]) -> None:
    if not fut.cancelled() and fut.exception() is not None:
        log.error("applying edits failed", exc_info=fut.exception())


# --- small pure helpers ------------------------------------------------------------------

_EOL = re.compile(r"\r\n|\r|\n")
_SURROGATE = re.compile("[\ud800-\udfff]")


def utf16_len(text: str) -> int:
    if text.isascii():
        return len(text)
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def valid_text(text: str) -> str:
    """Lone surrogates (legal in JSON strings, not in UTF-8) become U+FFFD.

    Both are one UTF-16 unit, so LSP positions keep pointing at the same places.
    """
    if text.isascii():
        return text
    return _SURROGATE.sub("\ufffd", text)


def _typed_into(shown: Shown | None, pending: list[Edit]) -> str | None:
    """The text typed at the suggestion's anchor, if that is all that changed and it
    is a beginning of the suggestion; else None."""
    if shown is None or len(pending) != 1:
        return None
    edit = pending[0]
    if edit.start is None or edit.start != edit.end or edit.start != (shown.line, shown.character):
        return None
    if not shown.completion.text.startswith(edit.text):
        return None
    return edit.text
