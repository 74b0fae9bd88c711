"""pygls' protocol with the changes an editor notices.

- Positions are always UTF-16 (the pipeline's unit, contracts §2).
- ``completionProvider`` is advertised only when ``completionFallback`` is on.
- A request whose params do not fit its method, or that comes after ``shutdown``,
  gets an error response instead of silence (the client would wait forever).
- Documents are kept by the server (``store.py``), not pygls' workspace.
"""

from __future__ import annotations

import contextlib
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pygls.protocol import LanguageServerProtocol
from pygls.protocol.language_server import lsp_method

if TYPE_CHECKING:
    from phi_lsp.server.app import PhiLanguageServer


class PhiProtocol(LanguageServerProtocol):
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
        self._server.fallback_static = self._server.settings.completion_fallback
        if not self._server.fallback_static:
            result.capabilities.completion_provider = None
        return result

    # One copy of each file, in the server's store (text + an incrementally parsed tree).
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
