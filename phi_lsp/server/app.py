"""The language server object: what one session holds, and the settings it follows.

It composes the parts (``store.DocumentStore``, ``models.ModelManager``,
``suggest.Suggestions``) and owns what touches the client: settings pulled or pushed,
the dynamically registered completion fallback, ``phiLsp/status`` and progress.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import logging
import socket
import sys
import threading
from collections.abc import Coroutine, Mapping
from pathlib import Path
from typing import Any, BinaryIO, cast

from lsprotocol import types
from pygls.io_ import StdoutWriter
from pygls.lsp.server import LanguageServer

from phi_lsp import __version__, lsp_logging
from phi_lsp import settings as settings_mod
from phi_lsp.server.framing import FrameReader, serve_frames
from phi_lsp.server.models import ModelManager, ModelStatus
from phi_lsp.server.protocol import PhiProtocol
from phi_lsp.server.store import MAX_PARSED_CHARS, DocumentStore, Edit, Snapshot
from phi_lsp.server.suggest import Suggestions
from phi_lsp.server.verification import Verification
from phi_lsp.settings import Settings

log = logging.getLogger("phi_lsp.server")

SECTION = "phiLsp"
STATUS = "phiLsp/status"
FALLBACK_REGISTRATION_ID = "phi-lsp-completion-fallback"
# The actions of a failed load (window/showMessageRequest). VS Code's extension also
# acts on them itself (it writes the model setting, opens the settings or its output).
USE_TINY = "Use the tiny demo model"
OPEN_SETTINGS = "Open settings"
SHOW_LOG = "Show log"


@dataclasses.dataclass
class _LoadProgress:
    """One ``$/progress`` token: a stage of a load (download, build, load), its
    percentages increasing; a new stage or a new load gets a new token."""

    generation: int
    state: str
    percent: float | None
    queue: asyncio.Queue[tuple[str, ModelStatus | str]]


class PhiLanguageServer(LanguageServer):
    def __init__(self, overrides: Mapping[str, object] | None = None) -> None:
        super().__init__(
            "phi-lsp",
            __version__,
            text_document_sync_kind=types.TextDocumentSyncKind.Incremental,
            protocol_cls=PhiProtocol,
        )
        # CLI flags (--model, --device, --log-level) win over the editor's settings.
        self.overrides: dict[str, object] = dict(overrides or {})
        self.settings: Settings = Settings().replace(**self.overrides)
        self.log_handler: lsp_logging.LspLogHandler | None = None
        self.store = DocumentStore()
        self.suggestions = Suggestions()
        self.models = ModelManager(self._status_from_any_thread)
        self.verification = Verification()
        self.fallback_static = False
        self._fallback_registered = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._load_progress: _LoadProgress | None = None
        self._progress_tokens = 0
        # "Use the tiny demo model" chosen while the configured model was this spec:
        # tiny stays until the user configures another model.
        self._tiny_instead_of: str | None = None
        self.client_name = ""  # initialize's clientInfo.name
        self.log_file: str | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=4, thread_name_prefix="phi-complete"
        )
        self.closed = False

    # --- small helpers ------------------------------------------------------------

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run a background task whose failure is logged, never lost."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)

        def done(t: asyncio.Task[None]) -> None:
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

    def start_io(self, stdin: BinaryIO | None = None, stdout: BinaryIO | None = None) -> None:
        """pygls' stdio loop with a reader that does not trust headers (framing.py)."""
        self._stop_event = stop = threading.Event()
        self.protocol.set_writer(StdoutWriter(stdout or sys.stdout.buffer))
        reader = FrameReader(stdin or sys.stdin.buffer)
        try:
            asyncio.run(
                serve_frames(
                    stop, reader, self.protocol, self.thread_pool, self.report_server_error
                )
            )
        except BrokenPipeError:
            log.error("the connection to the editor is lost; shutting down")
        except (KeyboardInterrupt, SystemExit):
            pass
        finally:
            self.shutdown()

    def start_tcp(self, host: str, port: int) -> None:
        """One editor over TCP, read like stdio (framing.py); the server ends with it."""
        with socket.create_server((host, port)) as listener:
            log.info("listening on %s:%d", host, port)
            conn, peer = listener.accept()
        log.info("editor connected from %s", peer)
        with conn, conn.makefile("rb") as reader, conn.makefile("wb") as writer:
            self.start_io(reader, writer)

    def report_server_error(self, error: Exception, source: object) -> None:
        # Malformed messages and failing notifications are logged, not popped up:
        # the editor cannot do anything about them and the server keeps serving.
        log.warning("ignored a message that could not be handled: %s", error)

    # --- documents ------------------------------------------------------------------

    def open_document(self, item: types.TextDocumentItem) -> None:
        self.suggestions.cancel(item.uri)
        self.store.open(item.uri, item.text, item.version)
        if len(item.text) > MAX_PARSED_CHARS:
            entry = self.store.get(item.uri)
            if entry is not None:
                self._oversized_warning(item.uri, len(item.text))
                entry.warned = True

    def change_document(self, params: types.DidChangeTextDocumentParams) -> None:
        uri = params.text_document.uri
        # A suggestion for the old text is stale: stop it in the worker now.
        self.suggestions.cancel(uri)
        edits: list[Edit] = []
        for change in params.content_changes:
            if isinstance(change, types.TextDocumentContentChangePartial):
                r = change.range
                start = (r.start.line, r.start.character)
                edits.append(Edit(start, (r.end.line, r.end.character), change.text))
            else:
                edits.append(Edit(None, None, change.text))
        if not self.store.add_edits(uri, params.text_document.version, edits):
            log.warning("didChange for %s, which is not open; ignored", uri)

    def close_document(self, uri: str) -> None:
        self.suggestions.cancel(uri)
        self.store.close(uri)

    def warn_oversized(self, snap: Snapshot) -> None:
        if not snap.entry.warned:
            snap.entry.warned = True
            self._oversized_warning(snap.entry.uri, snap.size)

    def size_limit_text(self) -> str:
        return f"{MAX_PARSED_CHARS / 1e6:g} MB"

    def _oversized_warning(self, uri: str, size: int) -> None:
        msg = (
            f"phi-lsp: {uri} has {size / 1e6:.1f} M characters, over the "
            f"{self.size_limit_text()} limit: no suggestions for it"
        )
        log.warning("%s", msg)
        self.show(types.MessageType.Warning, msg)

    # --- settings -------------------------------------------------------------------

    def apply_settings(self, raw: object, *, initial: bool = False) -> None:
        # parse() also answers a value that is not an object (with a warning).
        new, warnings = settings_mod.parse(cast("Mapping[str, Any] | None", raw), self.settings)
        if self._tiny_instead_of is not None and raw is not None:
            if new.model == self._tiny_instead_of:
                new = new.replace(model="tiny")  # still the model that failed: keep tiny
            else:
                self._tiny_instead_of = None  # the user (or their editor) chose a model
        if self.overrides:
            new = new.replace(**self.overrides)
        for w in warnings:
            log.warning("%s", w)
        if warnings:
            self.show(types.MessageType.Warning, "phi-lsp settings: " + "; ".join(warnings))
        old, self.settings = self.settings, new
        if old != new:
            self.store.forget_shown()  # suggestions made under other settings
        lsp_logging.set_level(new.log_level, self.log_handler)
        if initial:
            return
        if self.models.apply(old, new):
            self.suggestions.cancel_all()
            self.store.forget_shown()
        if old.completion_fallback != new.completion_fallback:
            self.spawn(self._update_fallback_registration())

    async def pull_configuration(self) -> object:
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
        if self.fallback_static or not dynamic or want == self._fallback_registered:
            return  # static capability (or none): the handler answers empty when off
        method = types.TEXT_DOCUMENT_COMPLETION
        if want:
            selector = [types.TextDocumentFilterLanguage(language="python")]
            options = types.CompletionRegistrationOptions(document_selector=selector)
            registration = types.Registration(
                id=FALLBACK_REGISTRATION_ID, method=method, register_options=options
            )
            params = types.RegistrationParams(registrations=[registration])
            await self.client_register_capability_async(params)
        else:
            gone = types.Unregistration(id=FALLBACK_REGISTRATION_ID, method=method)
            await self.client_unregister_capability_async(
                types.UnregistrationParams(unregisterations=[gone])
            )
        self._fallback_registered = want

    # --- the model's state, told to the client ------------------------------------------

    def start_model(self) -> None:
        """(Re)load the model in the background; answers are empty until ready."""
        self._loop = asyncio.get_running_loop()
        self.suggestions.cancel_all()
        self.store.forget_shown()
        self.models.start(self.settings)

    def _status_from_any_thread(self, status: ModelStatus) -> None:
        """Queue ``status`` for the event loop; always queued (even from the loop's own
        thread), so that the client sees the states in the order they were set."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(self._status_changed, status)

    def send_status(self, status: ModelStatus | None = None) -> None:
        """``phiLsp/status``: the model's state and the interpreter examples run with."""
        wire: dict[str, str | float] = {**(status or self.models.status).to_wire()}
        if self.verification.interpreter is not None:
            wire.update(self.verification.interpreter.to_wire())
        with contextlib.suppress(Exception):
            self.protocol.notify(STATUS, wire)

    def _status_changed(self, status: ModelStatus) -> None:
        self.send_status(status)
        self._progress_step(status)
        if status.state == "error":
            self.spawn(self._offer_actions(status))
        if status.warning:
            self.show(types.MessageType.Warning, status.warning)

    def _progress_step(self, status: ModelStatus) -> None:
        """Feed ``$/progress``: begin at a stage's first status, report its percentages,
        end when the stage, the load or the loading is over."""
        busy = status.state in ("loading", "downloading")
        cur = self._load_progress
        if cur is not None:
            same = busy and cur.generation == status.generation and cur.state == status.state
            if same and None not in (cur.percent, status.percent):
                same = status.percent >= cur.percent  # type: ignore[operator]
            if not same:
                ended = status.generation == cur.generation and not busy
                cur.queue.put_nowait(("end", status.message if ended else ""))
                self._load_progress = cur = None
        if not busy:
            return
        if cur is None:
            queue: asyncio.Queue[tuple[str, ModelStatus | str]] = asyncio.Queue()
            cur = _LoadProgress(status.generation, status.state, status.percent, queue)
            self._load_progress = cur
            self.spawn(self._progress(queue))
        cur.percent = status.percent if status.percent is not None else cur.percent
        cur.queue.put_nowait(("report", status))

    async def _progress(self, queue: asyncio.Queue[tuple[str, ModelStatus | str]]) -> None:
        """One ``$/progress`` token: begin, a report per status, end."""
        caps = self.client_capabilities
        if self.closed or not (caps.window and caps.window.work_done_progress):
            return
        self._progress_tokens += 1
        token = f"phi-lsp-load-{self._progress_tokens}"
        try:
            await asyncio.wait_for(self.work_done_progress.create_async(token), timeout=5)
        except Exception as e:
            log.debug("no work-done progress: %s", e)
            return
        begun = False
        while True:
            kind, item = await queue.get()
            with contextlib.suppress(Exception):
                if kind == "end":
                    if begun:
                        end = types.WorkDoneProgressEnd(message=str(item) or None)
                        self.work_done_progress.end(token, end)
                    return
                assert isinstance(item, ModelStatus)
                pct = None if item.percent is None else int(item.percent)
                if not begun:
                    begin = types.WorkDoneProgressBegin(
                        title="phi-lsp", message=item.message, percentage=pct
                    )
                    self.work_done_progress.begin(token, begin)
                    begun = True
                else:
                    report = types.WorkDoneProgressReport(message=item.message, percentage=pct)
                    self.work_done_progress.report(token, report)

    async def _offer_actions(self, status: ModelStatus) -> None:
        """A failed load: one short message, with what the user can do about it where
        the client can do it (window/showMessageRequest); the details are in the log."""
        actions = [] if status.model == "tiny" else [USE_TINY]
        vscode = "code" in self.client_name.lower()
        window = self.client_capabilities.window
        if vscode:
            actions.append(OPEN_SETTINGS)
        if vscode or (window and window.show_document and self.log_file):
            actions.append(SHOW_LOG)
        params = types.ShowMessageRequestParams(
            type=types.MessageType.Error,
            message=status.message,
            actions=[types.MessageActionItem(title=a) for a in actions],
        )
        try:
            choice = await self.window_show_message_request_async(params)
        except Exception as e:  # the client is gone or refused: the status says it all
            log.debug("showMessageRequest: %s", e)
            return
        title = getattr(choice, "title", None)
        if title:
            log.info("the user chose %r", title)
        if title == USE_TINY and self.settings.model == status.model:
            # (An answer given late, after the user set another model, changes nothing.)
            self.use_tiny(status.model)
        elif title == SHOW_LOG and not vscode and self.log_file:
            uri = Path(self.log_file).absolute().as_uri()
            with contextlib.suppress(Exception):
                await self.window_show_document_async(
                    types.ShowDocumentParams(uri=uri, take_focus=True)
                )

    def use_tiny(self, failed: str) -> None:
        """Switch to the tiny demo model now, without a restart; it stays while the
        configured model is still ``failed`` (a client that writes the setting itself,
        like VS Code's extension, triggers no second reload: tiny is already set)."""
        if self.settings.model == "tiny" or "model" in self.overrides:
            return
        self._tiny_instead_of = failed
        old, self.settings = self.settings, self.settings.replace(model="tiny")
        if self.models.apply(old, self.settings):
            self.suggestions.cancel_all()
            self.store.forget_shown()

    # --- lifecycle ------------------------------------------------------------------

    def close(self, grace_s: float = 2.0) -> None:
        """Stop all work: in-flight suggestions, the worker, the thread pools."""
        if self.closed:
            return
        self.closed = True
        self.suggestions.cancel_all()
        self.models.close(grace_s)
        self.store.close_all()
        self.pool.shutdown(wait=False, cancel_futures=True)
