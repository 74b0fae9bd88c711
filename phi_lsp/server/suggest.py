"""One suggestion for a cursor: typed-ahead, else the pipeline on a snapshot.

A newer request (or an edit) for the same document cancels the older one in the
model worker; an answer for a document version that has moved on is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import threading
import time
from typing import TYPE_CHECKING

from lsprotocol import types

from phi_lsp.completion import Completion
from phi_lsp.documents import index_to_utf16
from phi_lsp.server.store import Shown

if TYPE_CHECKING:
    from phi_lsp.server.app import PhiLanguageServer

log = logging.getLogger("phi_lsp.server")

VERIFICATION = "phiLsp/verification"


@dataclasses.dataclass
class InFlight:
    """One running suggestion for a document; ``cancel`` stops it in the worker."""

    version: int | None
    cancel: threading.Event


class Suggestions:
    def __init__(self) -> None:
        self._inflight: dict[str, InFlight] = {}

    def cancel(self, uri: str) -> None:
        job = self._inflight.pop(uri, None)
        if job is not None:
            job.cancel.set()

    def cancel_all(self) -> None:
        for uri in list(self._inflight):
            self.cancel(uri)

    async def suggest(
        self, ls: PhiLanguageServer, uri: str, position: types.Position, *, invoked: bool
    ) -> Completion | None:
        """The Completion for ``uri`` at ``position``, or None (no answer / stale).

        ``invoked``: the user asked explicitly, so no debounce.
        """
        store = ls.store
        if store.get(uri) is None:
            log.debug("completion for a document that is not open: %s", uri)
            return None
        completer = ls.models.completer
        if completer is None:
            return None  # loading, failed or disabled: answer at once
        t0 = time.perf_counter()
        ahead = store.typed_ahead(uri, position.line, position.character)
        if ahead is not None:
            self.cancel(uri)
            log.debug(
                "suggestion %s:%d:%d in %.3f ms (model 0.000 ms, cached True)",
                uri,
                position.line,
                position.character,
                (time.perf_counter() - t0) * 1000,
            )
            return ahead
        store.forget_shown(uri)
        self.cancel(uri)  # a newer request for the same document supersedes
        job = InFlight(None, threading.Event())
        self._inflight[uri] = job
        try:
            snap = await store.snapshot(uri)  # parsed on the parse thread
            if snap is None or job.cancel.is_set():
                return None
            job.version = snap.version
            doc = snap.doc
            if doc is None:
                ls.warn_oversized(snap)
                return None
            line = position.line
            if not 0 <= line < doc.line_count:
                log.debug("position %s is past the end of %s", position, uri)
                return None
            # LSP: a character past the end of the line means the end of the line.
            text = doc.line_text(line)
            character = max(0, min(position.character, index_to_utf16(text, len(text))))
            if ls.settings.debounce_ms and not invoked:
                await asyncio.sleep(ls.settings.debounce_ms / 1000)
            verifying = ls.settings.verify != "off"
            if verifying:  # examples run only isolated or where the user opted in
                verifying = await ls.verification.may_run(ls, ls.settings)
            if job.cancel.is_set():
                return None
            completer.run_examples = verifying
            completer.workspace_roots = ls.verification.workspace_roots(ls)
            call = functools.partial(
                completer.complete, doc, line, character, key=uri, cancel=job.cancel
            )
            result = await asyncio.get_running_loop().run_in_executor(ls.pool, call)
        except asyncio.CancelledError:
            job.cancel.set()  # $/cancelRequest: stop the model too
            raise
        except Exception:
            log.exception("completion failed at %s:%d:%d", uri, position.line, position.character)
            return None
        finally:
            if self._inflight.get(uri) is job:
                del self._inflight[uri]
        if job.cancel.is_set() or not store.is_current(snap):
            log.debug("dropped a stale suggestion for %s (version %s)", uri, job.version)
            return None
        if log.isEnabledFor(logging.DEBUG):
            # `phi-lsp bench --suite server` reads this line (logLevel debug).
            log.debug(
                "suggestion %s:%d:%d in %.3f ms (model %.3f ms, cached %s)",
                uri,
                line,
                character,
                (time.perf_counter() - t0) * 1000,
                completer.timings.get("model_ms", 0.0) if result is not None else 0.0,
                bool(result is not None and result.cached),
            )
        if result is not None and result.text:
            store.show(uri, Shown(line, character, result, snap.version))
        if result is not None and verifying:
            notify_verification(ls, uri, result)
        return result


def notify_verification(ls: PhiLanguageServer, uri: str, c: Completion) -> None:
    status = c.status or ("no-examples" if c.verified is None else "")
    if not status:
        status = "passed" if c.verified else "failed"
    examples = c.examples or {}
    params = {
        "uri": uri,
        "range": c.range,
        "status": status,
        "passed": int(examples.get("passed", 0)),
        "failed": int(examples.get("failed", 0)),
        "candidatesTried": int(c.candidates_tried),
    }
    log.info(
        "verification %s for %s: %d passed, %d failed (%d candidates)",
        status,
        c.function,
        params["passed"],
        params["failed"],
        params["candidatesTried"],
    )
    with contextlib.suppress(Exception):
        ls.protocol.notify(VERIFICATION, params)
