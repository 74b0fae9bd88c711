"""The LSP handlers: thin — parse the request, call one method, convert the answer."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from lsprotocol import types

from phi_lsp.completion import Completion
from phi_lsp.server.app import SECTION, PhiLanguageServer
from phi_lsp.server.verify_command import VERIFY_COMMAND, VerifyReply, verify_at

log = logging.getLogger("phi_lsp.server")


def _lsp_range(c: Completion) -> types.Range:
    r = c.range
    return types.Range(
        start=types.Position(line=r["start"]["line"], character=r["start"]["character"]),
        end=types.Position(line=r["end"]["line"], character=r["end"]["character"]),
    )


def _snippet_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("$", "\\$").replace("}", "\\}")


def build_server(
    overrides: dict[str, object] | None = None,
    *,
    watch_parent: Callable[[PhiLanguageServer, int | None], None] | None = None,
) -> PhiLanguageServer:
    """The server with its handlers. ``watch_parent(ls, pid)`` runs at ``initialize``
    with the editor's process id (``serve`` passes the one that exits with the editor)."""
    server = PhiLanguageServer(overrides)

    @server.feature(types.INITIALIZE)
    def initialize(ls: PhiLanguageServer, params: types.InitializeParams) -> None:
        if ls.log_handler is not None:
            ls.log_handler.attach(asyncio.get_running_loop())
        ls.client_name = params.client_info.name if params.client_info else ""
        ls.apply_settings(params.initialization_options, initial=True)
        if watch_parent is not None:
            watch_parent(ls, params.process_id)

    @server.feature(types.INITIALIZED)
    async def initialized(ls: PhiLanguageServer, params: types.InitializedParams) -> None:
        ls.start_model()
        ls.spawn(ls.verification.refresh(ls))  # the interpreter, for phiLsp/status

    @server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
    async def did_change_configuration(
        ls: PhiLanguageServer, params: types.DidChangeConfigurationParams
    ) -> None:
        raw = await ls.pull_configuration()
        if raw is None:
            pushed = params.settings
            raw = pushed.get(SECTION) if isinstance(pushed, dict) else None
        python = ls.settings.python_path
        ls.apply_settings(raw)
        if ls.settings.python_path != python:
            ls.spawn(ls.verification.refresh(ls))

    @server.feature(types.WORKSPACE_DID_CHANGE_WORKSPACE_FOLDERS)
    async def did_change_workspace_folders(
        ls: PhiLanguageServer, params: types.DidChangeWorkspaceFoldersParams
    ) -> None:
        ls.spawn(ls.verification.refresh(ls))  # pygls updated ls.workspace first

    @server.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())
    async def inline_completion(
        ls: PhiLanguageServer, params: types.InlineCompletionParams
    ) -> types.InlineCompletionList:
        invoked = params.context.trigger_kind == types.InlineCompletionTriggerKind.Invoked
        uri = params.text_document.uri
        c = await ls.suggestions.suggest(ls, uri, params.position, invoked=invoked)
        if c is None or not c.text:
            return types.InlineCompletionList(items=[])
        rng = _lsp_range(c)
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
        uri = params.text_document.uri
        c = await ls.suggestions.suggest(ls, uri, params.position, invoked=False)
        if c is None or not c.text.strip():
            return types.CompletionList(is_incomplete=True, items=[])
        first = next((x.strip() for x in c.text.splitlines() if x.strip()), c.text)
        item = types.CompletionItem(
            label=first[:60],
            kind=types.CompletionItemKind.Snippet,
            detail=f"phi-lsp: body of {c.function}",
            documentation=c.text,  # plain text: every client can show it
            insert_text_format=types.InsertTextFormat.Snippet,
            insert_text_mode=types.InsertTextMode.AsIs,
            text_edit=types.TextEdit(range=_lsp_range(c), new_text=_snippet_escape(c.text)),
            sort_text="0",
            preselect=True,
        )
        return types.CompletionList(is_incomplete=True, items=[item])

    @server.command(VERIFY_COMMAND)
    async def verify_function(ls: PhiLanguageServer, *args: object) -> VerifyReply:
        return await verify_at(ls, args)

    @server.feature(types.SHUTDOWN)
    def shutdown(ls: PhiLanguageServer, params: None) -> None:
        log.info("shutdown requested")
        ls.close()

    return server
