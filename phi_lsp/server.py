"""The language server: ``phi-lsp --stdio`` (default) or ``--tcp --host H --port N``.

Handlers are thin and async: they look up the document, hand the work to
``Completer.complete`` on a thread, and convert the answer. The model loads in the
background after ``initialized``; until it is ready (or if it failed) requests get
an empty answer at once. A suggestion computed for a document version that has
moved on is dropped, never sent. See docs/contracts.md §4 for the editor side.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import dataclasses
import functools
import logging
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Generator
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol
from pygls.protocol.language_server import lsp_method

from phi_lsp import __version__, lsp_logging
from phi_lsp import settings as settings_mod
from phi_lsp.documents import Document, index_to_utf16
from phi_lsp.settings import Settings

log = logging.getLogger("phi_lsp.server")

SECTION = "phiLsp"
STATUS = "phiLsp/status"
VERIFICATION = "phiLsp/verification"
VERIFY_COMMAND = "phiLsp.verifyFunction"
FALLBACK_REGISTRATION_ID = "phi-lsp-completion-fallback"
_RELOAD_KEYS = ("model", "device", "dtype", "enable", "remote_model", "api_key_env")


@dataclasses.dataclass
class _InFlight:
    """One running suggestion for a document; ``cancel`` stops it in the worker."""

    version: int | None
    cancel: threading.Event


@dataclasses.dataclass
class _Edit:
    """One pending content change; ``start`` None replaces the whole text."""

    start: tuple[int, int] | None
    end: tuple[int, int] | None
    text: str

    def as_range(self) -> dict[str, Any] | None:
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
            and self.start[1] + _utf16_len(self.text) == character
            and "\n" not in self.text
            and "\r" not in self.text
        )


@dataclasses.dataclass
class _Shown:
    """The last suggestion answered for a document, anchored at its cursor."""

    line: int
    character: int
    completion: Any  # phi_lsp.completion.Completion
    version: int | None


class PhiProtocol(LanguageServerProtocol):
    """pygls' protocol with the changes an editor notices.

    - Positions are always UTF-16 (the pipeline's unit, contracts §2).
    - ``completionProvider`` is advertised only when ``completionFallback`` is on.
    - A request whose params do not fit its method, or that comes after ``shutdown``,
      gets an error response instead of silence (the client would wait forever).
    - Documents are kept by the server (``phi_lsp.documents``), not pygls' workspace.
    """

    _server: PhiLanguageServer

    @lsp_method(types.INITIALIZE)
    def lsp_initialize(
        self, params: types.InitializeParams
    ) -> Generator[Any, Any, types.InitializeResult]:
        general = params.capabilities.general
        if general is not None and general.position_encodings:
            general.position_encodings = None  # fall back to UTF-16
        result = yield from super().lsp_initialize(params)
        # With completionFallback on now, completion is advertised statically for good.
        self._server._fallback_static = self._server.settings.completion_fallback
        if not self._server._fallback_static:
            result.capabilities.completion_provider = None
        return result

    # Documents live in the server's own store (phi_lsp.documents: text + an
    # incrementally parsed tree), not in pygls' workspace: one copy of each file.
    @lsp_method(types.TEXT_DOCUMENT_DID_OPEN)
    def lsp_text_document__did_open(self, params: types.DidOpenTextDocumentParams) -> None:
        self._server.open_document(params.text_document)

    @lsp_method(types.TEXT_DOCUMENT_DID_CHANGE)
    def lsp_text_document__did_change(self, params: types.DidChangeTextDocumentParams) -> None:
        self._server.change_document(params)

    @lsp_method(types.TEXT_DOCUMENT_DID_CLOSE)
    def lsp_text_document__did_close(self, params: types.DidCloseTextDocumentParams) -> None:
        self._server.close_document(params.text_document.uri)

    def handle_message(self, message: Any) -> None:
        # pygls drops requests that arrive after `shutdown` without a reply, and the
        # client would wait forever: answer InvalidRequest (LSP) instead.
        if self._shutdown and getattr(message, "method", types.EXIT) != types.EXIT:
            msg_id = getattr(message, "id", None)
            if msg_id is not None and not hasattr(message, "result"):
                with contextlib.suppress(Exception):
                    self._send_response(
                        msg_id,
                        error=types.ResponseError(
                            code=-32600, message="the server is shutting down"
                        ),
                    )
                return
        super().handle_message(message)

    def structure_message(self, data: dict[str, Any]) -> Any:
        try:
            return super().structure_message(data)
        except JsonRpcException as exc:
            if isinstance(data, dict) and "id" in data and "method" in data:
                with contextlib.suppress(Exception):
                    msg = f"invalid params for {data.get('method')!r}"
                    self._send_response(
                        data["id"],
                        error=types.ResponseError(code=exc.code, message=msg),
                    )
            raise


class PhiLanguageServer(LanguageServer):
    def __init__(self, overrides: dict[str, Any] | None = None) -> None:
        super().__init__(
            "phi-lsp",
            __version__,
            text_document_sync_kind=types.TextDocumentSyncKind.Incremental,
            protocol_cls=PhiProtocol,
        )
        # CLI flags (--model, --device, --log-level) win over the editor's settings.
        self.overrides: dict[str, Any] = overrides or {}
        self.settings: Settings = Settings().replace(**self.overrides)
        self.worker: Any = None  # model_runtime.Worker
        self.completer: Any = None  # phi_lsp.completion.Completer
        self.state = "loading"
        self.state_message = ""
        self.device = ""
        self.log_handler: lsp_logging.LspLogHandler | None = None
        self._model_generation = 0
        self._cpu_warned = False
        self._fallback_registered = False
        self._fallback_static = False
        self.documents: dict[str, Document] = {}
        # Edits not yet applied to the Document (its tree-sitter reparse costs tens of
        # ms on a big file): applied before the pipeline reads it, or when typing pauses.
        self._pending: dict[str, list[_Edit]] = {}
        self._flush_timers: dict[str, asyncio.TimerHandle] = {}
        self._shown: dict[str, _Shown] = {}
        self._inflight: dict[str, _InFlight] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=4, thread_name_prefix="phi-complete"
        )
        self._closed = False

    # --- small helpers ------------------------------------------------------------

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run a background task whose failure is logged, never lost."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            self._tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                log.error("background task failed", exc_info=t.exception())

        task.add_done_callback(done)

    def show(self, kind: types.MessageType, message: str) -> None:
        with contextlib.suppress(Exception):
            self.window_show_message(types.ShowMessageParams(type=kind, message=message))

    def shutdown(self) -> None:
        # pygls waits for its thread pool here, and one of its threads is blocked
        # reading stdin, which the editor may keep open after `exit`: do not wait.
        if self._stop_event is not None:
            self._stop_event.set()
        if self._thread_pool is not None:
            self._thread_pool.shutdown(wait=False, cancel_futures=True)
        if self._server is not None:
            self._server.close()

    def report_server_error(self, error: Exception, source: Any) -> None:
        # Malformed messages and failing notifications are logged, not popped up:
        # the editor cannot do anything about them and the server keeps serving.
        log.warning("ignored a message that could not be handled: %s", error)

    # --- documents ------------------------------------------------------------------

    def open_document(self, item: types.TextDocumentItem) -> None:
        self._cancel(item.uri)
        self._forget(item.uri)
        try:
            self.documents[item.uri] = Document(_valid_text(item.text), item.version, item.uri)
        except Exception:
            log.exception("could not open %s", item.uri)

    def change_document(self, params: types.DidChangeTextDocumentParams) -> None:
        uri = params.text_document.uri
        # A suggestion for the old text is stale: stop it in the worker now.
        self._cancel(uri)
        doc = self.documents.get(uri)
        if doc is None:
            log.warning("didChange for %s, which is not open; ignored", uri)
            return
        pending = self._pending.setdefault(uri, [])
        for change in params.content_changes:
            text = _valid_text(change.text)
            rng = getattr(change, "range", None)
            if rng is None:
                pending[:] = [_Edit(None, None, text)]
                continue
            start = (rng.start.line, rng.start.character)
            end = (rng.end.line, rng.end.character)
            last = pending[-1] if pending else None
            plain = "\n" not in text and "\r" not in text
            if last is not None and start == end and plain and last.extends(*start):
                last.text += text  # one keystroke after another: one edit, one reparse
            else:
                pending.append(_Edit(start, end, text))
        doc.version = params.text_document.version
        self._schedule_flush(uri)

    def close_document(self, uri: str) -> None:
        self._cancel(uri)
        self._forget(uri)
        self.documents.pop(uri, None)

    def _forget(self, uri: str) -> None:
        self._pending.pop(uri, None)
        self._shown.pop(uri, None)
        timer = self._flush_timers.pop(uri, None)
        if timer is not None:
            timer.cancel()

    def _schedule_flush(self, uri: str, delay_s: float = 0.3) -> None:
        timer = self._flush_timers.pop(uri, None)
        if timer is not None:
            timer.cancel()
        with contextlib.suppress(RuntimeError):  # no loop: flushed on next use
            loop = asyncio.get_running_loop()
            self._flush_timers[uri] = loop.call_later(delay_s, self.flush, uri)

    def flush(self, uri: str) -> Document | None:
        """Apply pending edits; return the up-to-date Document (None if not open)."""
        timer = self._flush_timers.pop(uri, None)
        if timer is not None:
            timer.cancel()
        doc = self.documents.get(uri)
        pending = self._pending.pop(uri, None)
        if doc is None or not pending:
            return doc
        self._rebase_shown(uri, pending, doc.version)
        version = doc.version
        for edit in pending:
            try:
                doc.apply_change(edit.as_range(), edit.text)
            except Exception:
                log.exception("could not apply an edit to %s; its text may be out of date", uri)
        doc.version = version
        return doc

    def _rebase_shown(self, uri: str, pending: list[_Edit], version: int | None) -> None:
        """Typed-ahead text becomes part of the document: move the anchor past it."""
        shown = self._shown.pop(uri, None)
        typed = _typed_into(shown, pending)
        if shown is None or typed is None:
            return
        rest = shown.completion.text[len(typed) :]
        if rest.strip():
            self._shown[uri] = _Shown(
                shown.line,
                shown.character + _utf16_len(typed),
                dataclasses.replace(shown.completion, text=rest),
                version,
            )

    def typed_ahead(self, uri: str, line: int, character: int) -> Any:
        """The rest of the last suggestion if the user typed its beginning, else None.

        Needs no reparse, no context and no model: the typed text is checked against
        the pending (not yet applied) edit.
        """
        shown = self._shown.get(uri)
        doc = self.documents.get(uri)
        if shown is None or doc is None or line != shown.line:
            return None
        pending = self._pending.get(uri) or []
        if not pending:  # the same request again, nothing typed
            same = doc.version == shown.version and character == shown.character
            return shown.completion if same else None
        typed = _typed_into(shown, pending)
        if typed is None or character != shown.character + _utf16_len(typed):
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

    # --- settings -------------------------------------------------------------------

    def apply_settings(self, raw: Any, *, initial: bool = False) -> None:
        new, warnings = settings_mod.parse(raw, self.settings)
        if self.overrides:
            new = new.replace(**self.overrides)
        for w in warnings:
            log.warning("%s", w)
        if warnings:
            self.show(types.MessageType.Warning, "phi-lsp settings: " + "; ".join(warnings))
        old, self.settings = self.settings, new
        if old != new:
            self._shown.clear()  # suggestions made under other settings
        lsp_logging.set_level(new.log_level, self.log_handler)
        if initial:
            return
        if any(getattr(old, k) != getattr(new, k) for k in _RELOAD_KEYS):
            log.info("model settings changed: reloading %s on %s", new.model, new.device)
            self.start_model()
        elif old != new and self.completer is not None:
            self.completer = self._make_completer(self.worker, new)
        if old.completion_fallback != new.completion_fallback:
            self.spawn(self._update_fallback_registration())

    async def pull_configuration(self) -> Any:
        """``workspace/configuration`` for our section, or None if unsupported."""
        caps = self.client_capabilities
        if not (caps.workspace and caps.workspace.configuration):
            return None
        try:
            result = await asyncio.wait_for(
                self.workspace_configuration_async(
                    types.ConfigurationParams(items=[types.ConfigurationItem(section=SECTION)])
                ),
                timeout=5,
            )
        except Exception as e:
            log.warning("workspace/configuration failed (%s); keeping settings", e)
            return None
        return result[0] if result else None

    async def _update_fallback_registration(self) -> None:
        caps = self.client_capabilities
        dynamic = bool(
            caps.text_document
            and caps.text_document.completion
            and caps.text_document.completion.dynamic_registration
        )
        want = self.settings.completion_fallback
        if self._fallback_static or not dynamic or want == self._fallback_registered:
            return  # static capability (or none): the handler answers empty when off
        if want:
            await self.client_register_capability_async(
                types.RegistrationParams(
                    registrations=[
                        types.Registration(
                            id=FALLBACK_REGISTRATION_ID,
                            method=types.TEXT_DOCUMENT_COMPLETION,
                            register_options=types.CompletionRegistrationOptions(
                                document_selector=[
                                    types.TextDocumentFilterLanguage(language="python")
                                ]
                            ),
                        )
                    ]
                )
            )
        else:
            await self.client_unregister_capability_async(
                types.UnregistrationParams(
                    unregisterations=[
                        types.Unregistration(
                            id=FALLBACK_REGISTRATION_ID, method=types.TEXT_DOCUMENT_COMPLETION
                        )
                    ]
                )
            )
        self._fallback_registered = want

    # --- model lifecycle ----------------------------------------------------------

    def set_state(self, state: str, message: str = "") -> None:
        self.state, self.state_message = state, message
        params = {
            "state": state,
            "model": self.settings.model,
            "device": self.device or self.settings.device,
            "message": message,
        }
        with contextlib.suppress(Exception):
            self.protocol.notify(STATUS, params)

    def start_model(self) -> None:
        """(Re)load the model in the background; answers are empty until ready."""
        self._model_generation += 1
        generation = self._model_generation
        self._cancel_all()
        self._shown.clear()
        old, self.worker, self.completer = self.worker, None, None
        if old is not None:
            threading.Thread(target=_quiet_shutdown, args=(old,), daemon=True).start()
        self.device = ""
        s = self.settings
        if not s.enable:
            self.set_state("disabled", "phi-lsp is disabled (phiLsp.enable is false)")
            return
        try:
            from model_runtime import Worker

            worker = Worker(
                functools.partial(
                    _load_engine,
                    s.model,
                    s.device,
                    s.dtype,
                    remote_model=s.remote_model,
                    api_key_env=s.api_key_env,
                )
            )
        except Exception as e:  # the runtime itself is broken: say so, keep serving
            self._load_failed(s.model, e)
            return
        self.worker = worker
        self.set_state("loading", f"loading {s.model}")
        self.spawn(self._watch_load(worker, generation))

    async def _watch_load(self, worker: Any, generation: int) -> None:
        if self._closed:
            return
        spec = self.settings.model
        token = f"phi-lsp-load-{generation}"
        progress = await self._progress_begin(token, f"Loading {spec}")
        t0 = time.perf_counter()
        try:
            info = await asyncio.wrap_future(worker.ready())
        except Exception as e:
            if generation == self._model_generation:
                self._load_failed(spec, e)
            if progress:
                self._progress_end(token, "failed")
            return
        if generation != self._model_generation:  # superseded by a newer reload
            if progress:
                self._progress_end(token, "superseded")
            return
        self.device = getattr(info, "device", "")
        try:
            self.completer = self._make_completer(worker, self.settings)
        except Exception as e:
            self._load_failed(spec, e)
            if progress:
                self._progress_end(token, "failed")
            return
        secs = time.perf_counter() - t0
        log.info("model %s ready on %s in %.1f s", spec, self.device, secs)
        self.set_state("ready", f"{spec} on {self.device}")
        if progress:
            self._progress_end(token, f"{spec} ready on {self.device}")
        if (
            getattr(info, "backend", "") == "local"
            and self.device == "cpu"
            and self.settings.device != "cpu"
            and not self._cpu_warned
        ):
            self._cpu_warned = True
            msg = (
                f"phi-lsp: no CUDA GPU available; running {spec} on the CPU. Suggestions "
                "will be slow. Set phiLsp.device to 'cpu' to silence this warning."
            )
            log.warning("%s", msg)
            self.show(types.MessageType.Warning, msg)

    def _make_completer(self, worker: Any, s: Settings) -> Any:
        from phi_lsp.completion import Completer

        return Completer(worker, s)

    def _load_failed(self, spec: str, error: BaseException) -> None:
        reason = str(error) or type(error).__name__
        if "out of memory" in reason.lower():
            hint = "Try phiLsp.dtype 'float16' or 'int8', or phiLsp.device 'cpu'."
        else:
            hint = (
                "Set phiLsp.model to a local model directory (or 'tiny' for the small "
                "offline demo model), or check phiLsp.device."
            )
        message = f"phi-lsp could not load the model {spec!r}: {reason}. {hint}"
        log.error("%s", message)
        self.worker, self.completer = None, None
        self.set_state("error", message)
        self.show(types.MessageType.Error, message + " Completions are off until then.")

    async def _progress_begin(self, token: str, title: str) -> bool:
        caps = self.client_capabilities
        if not (caps.window and caps.window.work_done_progress):
            return False
        try:
            await asyncio.wait_for(self.work_done_progress.create_async(token), timeout=5)
            self.work_done_progress.begin(
                token, types.WorkDoneProgressBegin(title="phi-lsp", message=title)
            )
        except Exception as e:
            log.debug("no work-done progress: %s", e)
            return False
        return True

    def _progress_end(self, token: str, message: str) -> None:
        with contextlib.suppress(Exception):
            self.work_done_progress.end(token, types.WorkDoneProgressEnd(message=message))

    # --- suggestions --------------------------------------------------------------

    def _cancel(self, uri: str) -> None:
        job = self._inflight.pop(uri, None)
        if job is not None:
            job.cancel.set()

    def _cancel_all(self) -> None:
        for uri in list(self._inflight):
            self._cancel(uri)

    async def suggest(self, uri: str, position: types.Position, *, invoked: bool = False) -> Any:
        """The Completion for ``uri`` at ``position``, or None (no answer / stale).

        ``invoked``: the user asked explicitly, so no debounce.
        """
        doc = self.documents.get(uri)
        if doc is None:
            log.debug("completion for a document that is not open: %s", uri)
            return None
        completer = self.completer
        if completer is None:
            return None  # loading, failed or disabled: answer at once
        t0 = time.perf_counter()
        ahead = self.typed_ahead(uri, position.line, position.character)
        if ahead is not None:
            self._cancel(uri)
            log.debug(
                "suggestion %s:%d:%d in %.3f ms (model 0.000 ms, cached True)",
                uri,
                position.line,
                position.character,
                (time.perf_counter() - t0) * 1000,
            )
            return ahead
        self._shown.pop(uri, None)
        doc = self.flush(uri) or doc
        line = position.line
        if not 0 <= line < doc.line_count:
            log.debug("position %s is past the end of %s", position, uri)
            return None
        # LSP: a character past the end of the line means the end of the line.
        width = index_to_utf16(doc.line_text(line), len(doc.line_text(line)))
        character = max(0, min(position.character, width))
        self._cancel(uri)  # a newer request for the same document supersedes
        job = _InFlight(doc.version, threading.Event())
        self._inflight[uri] = job
        try:
            if self.settings.debounce_ms and not invoked:
                await asyncio.sleep(self.settings.debounce_ms / 1000)
            if job.cancel.is_set():
                return None
            # The completer reads a copy: edits may arrive while it runs.
            snapshot = doc.snapshot()
            loop = asyncio.get_running_loop()
            call = functools.partial(
                completer.complete, snapshot, line, character, key=uri, cancel=job.cancel
            )
            result = await loop.run_in_executor(self._pool, call)
        except asyncio.CancelledError:
            job.cancel.set()  # $/cancelRequest: stop the model too
            raise
        except Exception:
            log.exception("completion failed at %s:%d:%d", uri, line, character)
            return None
        finally:
            if self._inflight.get(uri) is job:
                del self._inflight[uri]
        current = self.documents.get(uri)
        if job.cancel.is_set() or current is not doc or doc.version != job.version:
            log.debug("dropped a stale suggestion for %s (version %s)", uri, job.version)
            return None
        if log.isEnabledFor(logging.DEBUG):
            # `phi-lsp bench --suite server` reads this line (logLevel debug).
            timings = getattr(completer, "timings", None) or {}
            log.debug(
                "suggestion %s:%d:%d in %.3f ms (model %.3f ms, cached %s)",
                uri,
                line,
                character,
                (time.perf_counter() - t0) * 1000,
                timings.get("model_ms", 0.0) if result is not None else 0.0,
                bool(getattr(result, "cached", False)),
            )
        if result is not None and result.text:
            self._shown[uri] = _Shown(line, character, result, doc.version)
        if result is not None and self.settings.verify != "off":
            self._notify_verification(uri, result)
        return result

    def _notify_verification(self, uri: str, c: Any) -> None:
        status = getattr(c, "status", "") or (
            "no-examples" if getattr(c, "verified", None) is None else ""
        )
        if not status:
            status = "passed" if c.verified else "failed"
        examples = getattr(c, "examples", None) or {}
        params = {
            "uri": uri,
            "range": c.range,
            "status": status,
            "passed": int(examples.get("passed", 0)),
            "failed": int(examples.get("failed", 0)),
            "candidatesTried": int(getattr(c, "candidates_tried", 1)),
        }
        log.info(
            "verification %s for %s: %d passed, %d failed (%d candidates)",
            status,
            getattr(c, "function", "?"),
            params["passed"],
            params["failed"],
            params["candidatesTried"],
        )
        with contextlib.suppress(Exception):
            self.protocol.notify(VERIFICATION, params)

    # --- verification command -----------------------------------------------------

    async def verify_at(self, args: list[Any]) -> dict[str, Any]:
        uri, pos = _parse_verify_args(args)
        doc = self.flush(uri)
        if doc is None:
            raise _invalid(f"{VERIFY_COMMAND}: {uri} is not open in the editor")
        source = doc.text
        name, def_line, why = _function_at(source, pos[0])
        if name is None:
            self.show(types.MessageType.Warning, f"phi-lsp: {why}")
            return {"status": "error", "passed": 0, "failed": 0, "results": [], "reason": why}
        cancel = threading.Event()
        timeout_s = self.settings.verify_timeout_ms / 1000
        try:
            from phi_lsp import verify

            call = functools.partial(
                verify.verify_function,
                source,
                name,
                timeout_s=timeout_s,
                line=def_line,
                cancel=cancel,
            )
            result = await asyncio.get_running_loop().run_in_executor(self._pool, call)
        except asyncio.CancelledError:
            cancel.set()
            raise
        except Exception as e:
            log.exception("verifying %s failed", name)
            reason = f"verifying {name} failed: {e}"
            self.show(types.MessageType.Error, f"phi-lsp: {reason}")
            return {"status": "error", "passed": 0, "failed": 0, "results": [], "reason": reason}
        reply = _verify_reply(result)
        self.show(_verify_message_type(reply), "phi-lsp: " + _verify_summary(name, reply))
        log.info("verifyFunction %s: %s", name, _verify_summary(name, reply))
        return reply

    # --- lifecycle ------------------------------------------------------------------

    def close(self, grace_s: float = 2.0) -> None:
        """Stop all work: in-flight suggestions, the worker, the thread pool."""
        if self._closed:
            return
        self._closed = True
        self._cancel_all()
        worker, self.worker, self.completer = self.worker, None, None
        if worker is not None:
            t = threading.Thread(target=_quiet_shutdown, args=(worker,), daemon=True)
            t.start()
            t.join(grace_s)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def watch_parent(self, pid: int | None) -> None:
        """Exit when the editor that started us dies (LSP initialize ``processId``)."""
        if not pid or pid == os.getpid() or not _pid_alive(pid):
            return  # unknown or another pid namespace: nothing to watch

        def watch() -> None:
            while not self._closed:
                time.sleep(1.0)
                if not _pid_alive(pid):
                    log.warning("editor process %d is gone; exiting", pid)
                    self.close()
                    _end_children()
                    logging.shutdown()
                    os._exit(1)

        threading.Thread(target=watch, name="phi-parent-watch", daemon=True).start()


def _utf16_len(text: str) -> int:
    return (
        len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF) if not text.isascii() else len(text)
    )


def _typed_into(shown: _Shown | None, pending: list[_Edit]) -> str | None:
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


_SURROGATE = re.compile("[\ud800-\udfff]")


def _valid_text(text: str) -> str:
    """Lone surrogates (legal in JSON strings, not in UTF-8) become U+FFFD.

    Both are one UTF-16 unit, so LSP positions keep pointing at the same places.
    """
    if text.isascii():
        return text
    return _SURROGATE.sub("\ufffd", text)


def _quiet_shutdown(worker: Any) -> None:
    try:
        worker.shutdown(wait=True)
    except Exception:
        log.exception("worker shutdown failed")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def _load_engine(
    spec: str, device: str, dtype: str, *, remote_model: str = "", api_key_env: str = ""
) -> Any:
    """Runs on the worker thread. Asked for CUDA without one: CPU, with a warning."""
    from model_runtime import load_engine

    if device == "cuda" and not spec.startswith(("replay:", "openai:")):
        try:
            import torch

            has_cuda = bool(torch.cuda.is_available())
        except Exception:
            has_cuda = False
        if not has_cuda:
            log.warning("phiLsp.device is 'cuda' but no CUDA GPU is available; using the CPU")
            device = "cpu"
    options: dict[str, Any] = {}
    if spec.startswith("replay:") and os.environ.get("PHI_LSP_REPLAY_DELAY_S"):
        # Test knob: a slow deterministic model, to observe cancellation end to end.
        options["replay_delay_s"] = float(os.environ["PHI_LSP_REPLAY_DELAY_S"])
    if spec.startswith("openai:"):  # settings remoteModel, apiKeyEnv (docs/deploy.md)
        options.update(remote_model=remote_model, api_key_env=api_key_env)
    return load_engine(spec, device=device, dtype=dtype, **options)


def _invalid(message: str) -> JsonRpcException:
    from pygls.exceptions import JsonRpcInvalidParams

    return JsonRpcInvalidParams(message)


def _parse_verify_args(args: list[Any]) -> tuple[str, tuple[int, int]]:
    usage = f"{VERIFY_COMMAND} takes [uri, {{line, character}}]"
    if not isinstance(args, (list, tuple)) or len(args) != 2 or not isinstance(args[0], str):
        raise _invalid(usage)
    pos = args[1]
    if isinstance(pos, dict):
        line, ch = pos.get("line"), pos.get("character", 0)
    else:
        line, ch = getattr(pos, "line", None), getattr(pos, "character", 0)
    if not isinstance(line, int) or not isinstance(ch, int) or line < 0 or ch < 0:
        raise _invalid(usage)
    return args[0], (line, ch)


def _function_at(source: str, line: int) -> tuple[str | None, int, str]:
    """(name, 1-based def line, why not) of the function around 0-based ``line``.

    Top-level functions and methods (``Class.method``): a nested function cannot run
    on its own, so inside one the enclosing function is the one verified.
    """
    import ast

    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError) as e:
        where = f" at line {e.lineno}" if getattr(e, "lineno", None) else ""
        return None, 0, f"cannot verify: the file does not parse{where}; fix that first"

    def visit(node: ast.AST, prefix: str) -> tuple[str, int] | None:
        for child in ast.iter_child_nodes(node):
            if not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                continue
            first = min([d.lineno for d in child.decorator_list] + [child.lineno]) - 1
            if not first <= line <= (child.end_lineno or child.lineno) - 1:
                continue
            if isinstance(child, ast.ClassDef):
                return visit(child, prefix + child.name + ".")
            return prefix + child.name, child.lineno
        return None

    found = visit(tree, "")
    if found is None:
        return None, 0, f"no function at line {line + 1}"
    return found[0], found[1], ""


def _as_dict(obj: Any) -> dict[str, Any]:
    if isinstance(obj, dict):
        return obj
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    return dict(vars(obj))


def _verify_reply(result: Any) -> dict[str, Any]:
    d = _as_dict(result)
    results = [_as_dict(r) for r in d.get("results") or []]
    return {
        "status": d.get("status", "error"),
        "passed": int(d.get("passed", 0)),
        "failed": int(d.get("failed", 0)),
        "results": [
            {k: r.get(k) for k in ("source", "expected", "got", "ok") if k in r} for r in results
        ],
        "reason": d.get("reason", "") or "",
    }


def _verify_summary(name: str, r: dict[str, Any]) -> str:
    total = r["passed"] + r["failed"]
    if r["status"] == "no-examples":
        return f"{name}: the docstring has no examples to run"
    if r["status"] in ("error", "timeout") and not total:
        return f"{name}: {r['status']}: {r['reason']}"
    text = f"{name}: {r['passed']} of {total} examples passed"
    bad = [x for x in r["results"] if not x.get("ok")]
    if bad:
        x = bad[0]
        text += (
            f"; first failure: {x.get('source')} expected {x.get('expected')} got {x.get('got')}"
        )
    return text


def _verify_message_type(r: dict[str, Any]) -> types.MessageType:
    if r["status"] == "passed":
        return types.MessageType.Info
    if r["status"] == "no-examples":
        return types.MessageType.Info
    return types.MessageType.Warning


# --- handlers: thin ---------------------------------------------------------------


def _position_range(c: Any) -> types.Range:
    r = c.range
    return types.Range(
        start=types.Position(line=r["start"]["line"], character=r["start"]["character"]),
        end=types.Position(line=r["end"]["line"], character=r["end"]["character"]),
    )


def _snippet_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("$", "\\$").replace("}", "\\}")


def build_server(overrides: dict[str, Any] | None = None) -> PhiLanguageServer:
    server = PhiLanguageServer(overrides)

    @server.feature(types.INITIALIZE)
    def initialize(ls: PhiLanguageServer, params: types.InitializeParams) -> None:
        loop = asyncio.get_running_loop()
        if ls.log_handler is not None:
            ls.log_handler.attach(loop)
        ls.apply_settings(params.initialization_options, initial=True)
        ls.watch_parent(params.process_id)

    @server.feature(types.INITIALIZED)
    async def initialized(ls: PhiLanguageServer, params: types.InitializedParams) -> None:
        ls.start_model()

    @server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
    async def did_change_configuration(
        ls: PhiLanguageServer, params: types.DidChangeConfigurationParams
    ) -> None:
        raw = await ls.pull_configuration()
        if raw is None:
            pushed = params.settings
            raw = pushed.get(SECTION) if isinstance(pushed, dict) else None
        ls.apply_settings(raw)

    @server.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())
    async def inline_completion(
        ls: PhiLanguageServer, params: types.InlineCompletionParams
    ) -> types.InlineCompletionList:
        invoked = params.context.trigger_kind == types.InlineCompletionTriggerKind.Invoked
        c = await ls.suggest(params.text_document.uri, params.position, invoked=invoked)
        if c is None or not c.text:
            return types.InlineCompletionList(items=[])
        rng = _position_range(c)
        # VS Code shows an item only if the text in `range` is a prefix of filterText.
        filter_text = c.text if rng.start != rng.end else None
        item = types.InlineCompletionItem(insert_text=c.text, range=rng, filter_text=filter_text)
        return types.InlineCompletionList(items=[item])

    # Always installed; advertised (statically or dynamically) only with completionFallback.
    @server.feature(types.TEXT_DOCUMENT_COMPLETION)
    async def completion(
        ls: PhiLanguageServer, params: types.CompletionParams
    ) -> types.CompletionList:
        if not ls.settings.completion_fallback:
            return types.CompletionList(is_incomplete=False, items=[])
        # No `invoked` here: clients send Invoked for plain typing too.
        c = await ls.suggest(params.text_document.uri, params.position)
        if c is None or not c.text.strip():
            return types.CompletionList(is_incomplete=True, items=[])
        first = next((x.strip() for x in c.text.splitlines() if x.strip()), c.text)
        item = types.CompletionItem(
            label=first[:60],
            kind=types.CompletionItemKind.Snippet,
            detail=f"phi-lsp: body of {getattr(c, 'function', '')}",
            documentation=c.text,  # plain text: every client can show it
            insert_text_format=types.InsertTextFormat.Snippet,
            insert_text_mode=types.InsertTextMode.AsIs,
            text_edit=types.TextEdit(range=_position_range(c), new_text=_snippet_escape(c.text)),
            sort_text="0",
            preselect=True,
        )
        return types.CompletionList(is_incomplete=True, items=[item])

    @server.command(VERIFY_COMMAND)
    async def verify_function(ls: PhiLanguageServer, *args: Any) -> dict[str, Any]:
        return await ls.verify_at(list(args))

    @server.feature(types.SHUTDOWN)
    def shutdown(ls: PhiLanguageServer, params: None) -> None:
        log.info("shutdown requested")
        ls.close()

    return server


def serve(args: argparse.Namespace) -> int:
    """Entry point of ``phi-lsp [serve] [--stdio | --tcp --host H --port N]``."""
    overrides: dict[str, Any] = {}
    if getattr(args, "model", None):
        overrides["model"] = args.model
    if getattr(args, "device", None):
        overrides["device"] = args.device
    if getattr(args, "log_level", None):
        overrides["log_level"] = args.log_level
    log_file = lsp_logging.setup(overrides.get("log_level", "info"), args.log_file)
    server = build_server(overrides)
    handler = lsp_logging.LspLogHandler(_log_sender(server))
    server.log_handler = handler
    lsp_logging.install_lsp_handler(handler)
    log.info("phi-lsp %s starting (pid %d, log file %s)", __version__, os.getpid(), log_file)
    try:
        if getattr(args, "tcp", False):
            server.start_tcp(args.host, args.port)
        else:
            stdin, stdout = _claim_stdio()
            server.start_io(stdin, stdout)
    finally:
        server.close()
        lsp_logging.remove_lsp_handler(handler)
    code = 0 if server.protocol._shutdown else 1
    log.info("phi-lsp exiting with %d", code)
    logging.shutdown()
    _exit_if_threads_linger(code)
    return code


def _log_sender(server: PhiLanguageServer) -> Callable[[int, str], None]:
    def send(level: int, text: str) -> None:
        if level >= logging.ERROR:
            kind = types.MessageType.Error
        elif level >= logging.WARNING:
            kind = types.MessageType.Warning
        elif level >= logging.INFO:
            kind = types.MessageType.Info
        else:
            kind = types.MessageType.Log
        server.window_log_message(types.LogMessageParams(type=kind, message=text))

    return send


def _claim_stdio() -> tuple[Any, Any]:
    """Keep the real stdout for the protocol; point fd 1 and sys.stdout at stderr.

    A stray print() (ours, a library's, or a C extension's) then lands in stderr
    instead of corrupting the JSON-RPC stream.
    """
    sys.stdout.flush()
    proto_out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr
    return sys.stdin.buffer, proto_out


def _exit_if_threads_linger(code: int, grace_s: float = 2.0) -> None:
    """Threads stuck in a generation or a blocked read must not keep us alive.

    Our own request threads were told to stop (their cancel events are set, which
    also ends any verification sandbox they run): give them ``grace_s``. A thread
    still blocked after that, e.g. pygls' reader on an stdin the editor keeps open,
    must not hold the process: exit hard.
    """

    def lingering(ours_only: bool) -> list[threading.Thread]:
        return [
            t
            for t in threading.enumerate()
            if t is not threading.main_thread()
            and not t.daemon
            and t.is_alive()
            and (not ours_only or t.name.startswith("phi-"))
        ]

    deadline = time.monotonic() + grace_s
    while lingering(ours_only=True) and time.monotonic() < deadline:
        time.sleep(0.02)
    _end_children()
    if lingering(ours_only=False):
        sys.stderr.flush()
        os._exit(code)


def _end_children() -> None:
    """No child (a verification sandbox, in its own session) outlives the server.

    Sandboxes told to stop have ended by now; this is for one that was not told
    (a verification the pipeline runs without a cancel event). Linux /proc only.
    """
    me = os.getpid()
    try:
        names = os.listdir("/proc")
    except OSError:
        return
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        ppid, pgrp, pid = int(fields[1]), int(fields[2]), int(name)
        if ppid != me:
            continue
        with contextlib.suppress(OSError):
            if pgrp == pid:
                os.killpg(pid, signal.SIGKILL)  # the sandbox and whatever it forked
            else:
                os.kill(pid, signal.SIGKILL)
