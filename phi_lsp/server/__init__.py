"""The language server: ``phi-lsp --stdio`` (default) or ``--tcp --host H --port N``.

    framing.py         reading frames without trusting their headers (stdio and TCP)
    protocol.py        pygls' protocol with what editors notice (UTF-16, errors not silence)
    handlers.py        the LSP handlers, thin: parse, call, convert — ``build_server``
    app.py             the server object: settings, capabilities, model status to the client
    store.py           open documents, edit batching, parsing on its own threads, typed-ahead
    suggest.py         one suggestion: typed-ahead, else the pipeline on a snapshot
    models.py          ``ModelManager``: settings → engine config → worker → completer
                       (also the loading path of ``phi_lsp.api``; no pygls there)
    verify_command.py  ``phiLsp.verifyFunction``
    verification.py    may examples run here (isolation, verifyUnisolated); which interpreter
    process.py         ``serve``: stdio, exiting with the editor, no child left behind

The model loads in the background after ``initialized``; until it is ready (or if it
failed) requests get an empty answer at once. A suggestion computed for a document
version that has moved on is dropped, never sent. See docs/contracts.md §4.

Imports are lazy so that ``phi_lsp.server.models`` (used by the API) costs no pygls.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from phi_lsp.server.app import PhiLanguageServer
    from phi_lsp.server.handlers import build_server
    from phi_lsp.server.process import serve

__all__ = ["PhiLanguageServer", "build_server", "serve"]


def __getattr__(name: str) -> object:
    if name == "PhiLanguageServer":
        from phi_lsp.server.app import PhiLanguageServer

        return PhiLanguageServer
    if name == "build_server":
        from phi_lsp.server.handlers import build_server

        return build_server
    if name == "serve":
        from phi_lsp.server.process import serve

        return serve
    raise AttributeError(name)
