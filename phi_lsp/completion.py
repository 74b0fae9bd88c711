"""The completion pipeline, shared by the language server, ``phi-lsp complete`` and the API.

    ctx    = context.extract(doc, cursor)           # tree-sitter: function, docstring, ...
    prompt = prompt.build(ctx, window - new tokens)  # Phi-1 style, stable prefix first
    stop   = postprocess.Stopper(ctx, forced)        # end of body / repeated suffix
    text   = cache.lookup(prompt) or model(prompt, stop_fn=stop)
    text   = stop.finish(text)                       # cut, trim, keep the function parseable
    (verification: up to K candidates, passing ones first; see ``_best_of``)

``Completer`` takes any ``model_runtime.types.Backend``: a ``Worker`` (server: one
thread owns the model) or an engine (scripts: generate on the calling thread).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from model_runtime import Generation, GenerationRequest
from model_runtime.types import Backend
from phi_lsp import context as context_mod
from phi_lsp import prompt as prompt_mod
from phi_lsp.context import Context
from phi_lsp.documents import Document
from phi_lsp.functions import FunctionInfo, body_slot
from phi_lsp.postprocess import Stopper
from phi_lsp.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class Completion:
    """One suggestion; also the ``--json`` record."""

    function: str
    line: int  # 0-based line of the `def`
    text: str  # text that replaces ``range``
    range: dict  # LSP range, 0-based, UTF-16 characters
    latency_ms: float
    verified: bool | None = None
    examples: dict | None = None
    candidates_tried: int = 1
    status: str = ""
    cached: bool = field(default=False, repr=False)

    def as_record(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("cached")
        d["latency_ms"] = round(self.latency_ms, 1)
        return d


class SuggestionCache:
    """LRU of recent (prompt → model output). A prompt that extends a cached prompt with
    exactly the characters the model had suggested (the user typed along) is answered
    with the rest of that suggestion, without the model."""

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self._entries: OrderedDict[str, tuple[str, str]] = OrderedDict()  # prompt -> (out, finish)
        self.hits = 0
        self._lock = threading.Lock()

    def lookup(self, prompt: str, forced: str) -> tuple[str, str] | None:
        before = prompt + forced
        with self._lock:
            for p, (out, finish) in reversed(self._entries.items()):
                if not before.startswith(p):
                    continue
                full = p + out
                if full.startswith(before) and full[len(before) :].strip():
                    self._entries.move_to_end(p)
                    self.hits += 1
                    return forced + full[len(before) :], finish
        return None

    def store(self, prompt: str, out: str, finish: str) -> None:
        with self._lock:
            self._entries[prompt] = (out, finish)
            self._entries.move_to_end(prompt)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


@dataclass
class _Job:
    """One suggestion under way: its context, the source it was read from (candidates
    are spliced into it for verification), the worker key, cancellation, the file."""

    ctx: Context
    source: str
    key: str
    cancel: threading.Event | None
    path: str | None


class Completer:
    def __init__(
        self,
        backend: Backend,
        settings: Settings | None = None,
        *,
        count_tokens: Callable[[str], int] | None = None,
        cache_size: int = 64,
    ) -> None:
        self.backend = backend
        self.settings = settings or Settings()
        self.cache = SuggestionCache(cache_size)
        # The backend's own count (a Worker asks its loaded engine): prompts fill the
        # window exactly.
        self.count_tokens: Callable[[str], int] = count_tokens or backend.count_tokens
        self.timings: dict[str, float] = {}  # last request: pipeline vs model time, ms
        # The editor's workspace folders (the server sets them): a file's project root
        # when no pyproject.toml/setup.cfg/setup.py/.git is found above it.
        self.workspace_roots: tuple[str, ...] = ()
        # False where examples may not run (the server: no isolation and no
        # verifyUnisolated): suggestions then come unverified, whatever ``verify`` says.
        self.run_examples = True

    # --- public ---------------------------------------------------------------------

    def with_settings(self, settings: Settings) -> Completer:
        """A Completer on the same model under other settings: a fresh suggestion cache
        (its entries were made under the old ones), the same token counter."""
        return Completer(
            self.backend, settings, count_tokens=self.count_tokens, cache_size=self.cache.size
        )

    @property
    def context_length(self) -> int:
        # A Worker's info waits for the load (raises its ModelLoadError).
        return int(self.backend.info.context_length or 2048)

    @property
    def model_name(self) -> str:
        return self.backend.info.spec or self.settings.model

    def complete(
        self,
        source: str | Document,
        line: int,
        character: int,
        *,
        key: str = "",
        cancel: threading.Event | None = None,
    ) -> Completion | None:
        """A suggestion at an LSP position (0-based, UTF-16), inserted at the cursor.
        Blocking: the server calls it through ``asyncio.to_thread``."""
        t0 = time.perf_counter()
        doc = source if isinstance(source, Document) else Document(source)
        offset = doc.offset_at(line, character)
        ctx = context_mod.extract(doc, offset)
        if ctx is None:
            return None
        chosen = self._choose(_Job(ctx, doc.text, key, cancel, _file_path(doc.uri)))
        if chosen is None or not chosen.text:
            return None
        chosen.text = _with_newlines_of(doc, chosen.text)
        pos = {"line": line, "character": doc.position_at(offset)[1]}
        chosen.range = {"start": pos, "end": dict(pos)}
        chosen.latency_ms = (time.perf_counter() - t0) * 1000
        return chosen

    def fill(
        self, doc: Document, fn: FunctionInfo, *, cancel: threading.Event | None = None
    ) -> Completion | None:
        """A new body for ``fn`` (after its docstring); ``range`` is in ``doc``'s text."""
        t0 = time.perf_counter()
        slot = body_slot(doc, fn)
        # The source with the old body removed: an incremental edit of a copy, not a
        # full parse per function (`--all` on a long file).
        vdoc = doc.snapshot()
        vdoc.apply_change((doc.position_at(slot.start), doc.position_at(slot.end)), slot.lead)
        if vdoc.text != slot.virtual:  # positions clamp: never trust a mismatch
            vdoc = Document(slot.virtual)
        ctx = context_mod.extract(vdoc, slot.cursor)
        if ctx is None:
            return None
        chosen = self._choose(_Job(ctx, slot.virtual, "", cancel, _file_path(doc.uri)))
        if chosen is None or not chosen.text.strip():
            return None
        start, end = doc.position_at(slot.start), doc.position_at(slot.end)
        chosen.text = _with_newlines_of(doc, slot.lead + chosen.text)
        chosen.range = {
            "start": {"line": start[0], "character": start[1]},
            "end": {"line": end[0], "character": end[1]},
        }
        chosen.latency_ms = (time.perf_counter() - t0) * 1000
        return chosen

    # --- the pipeline ------------------------------------------------------------------

    def _choose(self, job: _Job) -> Completion | None:
        """prompt → (cache | model, stopped by the stop rules) → clean-up → [verify]."""
        t0 = time.perf_counter()
        ctx = job.ctx
        p = prompt_mod.build(
            ctx, self.context_length - self.settings.max_new_tokens, self.count_tokens
        )
        stopper = Stopper(ctx, p.forced_prefix)
        verify = _verifier() if self.settings.verify != "off" and self.run_examples else None
        if verify is None:
            got = self._generate(p, stopper, job.key, job.cancel, seed=None)
            rec = (
                None
                if got is None
                else Completion(ctx.function, ctx.def_line, got[0], {}, 0.0, cached=got[1])
            )
        else:
            rec = self._best_of(verify, p, stopper, job)
        self.timings = {"total_ms": (time.perf_counter() - t0) * 1000, "prompt_tokens": p.tokens}
        return rec

    def _best_of(
        self, verify: Callable[..., Any], p: prompt_mod.Prompt, stopper: Stopper, job: _Job
    ) -> Completion | None:
        """Up to K candidates (greedy, then sampled with seeds 1..K-1); the first that
        passes its examples wins, else the best ranked (no examples > failed)."""
        ctx, cancel = job.ctx, job.cancel
        best: tuple[int, Completion] | None = None
        tried = 0
        for i in range(self.settings.candidates):
            got = self._generate(p, stopper, job.key, cancel, seed=None if i == 0 else i)
            if got is None or (cancel is not None and cancel.is_set()):
                return None
            tried += 1
            cand = Completion(ctx.function, ctx.def_line, got[0], {}, 0.0, cached=got[1])
            rank = self._verify(verify, ctx, job.source, cand, cancel, job.path)
            if cancel is not None and cancel.is_set():
                return None
            if best is None or rank > best[0]:
                best = (rank, cand)
            if rank > 0:  # passed, or there is nothing to check: more samples cannot help
                break
        if best is None:
            return None
        rec = best[1]
        rec.candidates_tried = tried
        if self.settings.verify == "require" and rec.verified is False:
            return None
        return rec

    def _generate(
        self,
        p: prompt_mod.Prompt,
        stopper: Stopper,
        key: str,
        cancel: threading.Event | None,
        seed: int | None,
    ) -> tuple[str, bool] | None:
        """(suggestion, came from the cache) or None when cancelled."""
        s = self.settings
        if seed is None:
            hit = self.cache.lookup(p.text, p.forced_prefix)
            if hit is not None:
                out, finish = hit
                return stopper.finish(out, truncated=finish == "length"), True
        req = GenerationRequest(
            prompt=p.text,
            forced_prefix=p.forced_prefix,
            max_new_tokens=s.max_new_tokens,
            temperature=0.0 if seed is None else s.temperature,
            top_p=1.0 if seed is None else s.top_p,
            seed=seed,
            stop_fn=stopper,
            key=key,
        )
        gen = self._run(req, cancel)
        if gen.finish_reason == "cancelled":
            return None
        if seed is None:
            self.cache.store(p.text, gen.text, gen.finish_reason)
        return stopper.finish(gen.text, truncated=gen.finish_reason == "length"), False

    def _run(self, req: GenerationRequest, cancel: threading.Event | None) -> Generation:
        return self.backend.generate(req, cancel.is_set if cancel is not None else None)

    def _verify(
        self,
        verify: Any,
        ctx: Context,
        source: str,
        cand: Completion,
        cancel: threading.Event | None = None,
        path: str | None = None,
    ) -> int:
        """Run the docstring's examples on the candidate; rank: 2 passed, 1 no examples,
        0 failed/error/timeout. Fills the record's verification fields. ``path`` (the
        document's file) makes the candidate run inside its project: imported as pytest
        imports that file, with the project's interpreter (``verify/project.py``)."""
        spliced = source[: ctx.cursor] + cand.text + source[ctx.cursor :]
        try:
            res = verify(
                spliced,
                ctx.function,
                timeout_s=self.settings.verify_timeout_ms / 1000,
                line=ctx.def_line + 1,
                cancel=cancel,
                path=path,
                python=self.settings.python_path or None,
                workspace_roots=self.workspace_roots,
            )
        except Exception as e:  # a broken verifier must not lose the suggestion
            log.warning("verification failed to run: %s", e)
            cand.status = "error"
            return 0
        cand.status = str(getattr(res, "status", "error"))
        passed, failed = int(getattr(res, "passed", 0)), int(getattr(res, "failed", 0))
        cand.examples = {"passed": passed, "failed": failed}
        if cand.status == "no-examples":
            cand.verified = None
            return 1
        cand.verified = cand.status == "passed"
        return 2 if cand.verified else 0


def _with_newlines_of(doc: Document, text: str) -> str:
    """The suggestion with the document's line endings (the model writes "\n")."""
    second = doc.line_start(1)
    crlf = doc.line_count > 1 and doc.text[second - 2 : second] == "\r\n"
    return text.replace("\r\n", "\n").replace("\n", "\r\n") if crlf else text


def _file_path(uri: str) -> str | None:
    """The local path of a ``file:`` URI (a document's); None for anything else."""
    if not uri.startswith("file:"):
        return None
    from urllib.parse import unquote, urlparse

    parsed = urlparse(uri)
    if parsed.netloc not in ("", "localhost"):
        return None
    return unquote(parsed.path) or None


def _verifier() -> Callable[..., Any] | None:
    try:
        from phi_lsp.verify import verify_function
    except ImportError:
        log.warning(
            "verification is on but phi_lsp.verify is not available; suggestions unverified"
        )
        return None
    return verify_function
