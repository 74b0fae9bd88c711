"""End-to-end: the real ``python -m phi_lsp --stdio`` subprocess, driven by pytest-lsp.

Deterministic answers come from ``replay:`` models (files written in tmp dirs). The
client capabilities are passed explicitly: pytest-lsp's stock snapshots lack inline
completion.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types
from pytest_lsp import LanguageClient
from pytest_lsp.client import make_test_lsp_client

SERVER = [sys.executable, "-m", "phi_lsp", "--stdio"]

CAPS = types.ClientCapabilities(
    text_document=types.TextDocumentClientCapabilities(
        synchronization=types.TextDocumentSyncClientCapabilities(),
        inline_completion=types.InlineCompletionClientCapabilities(),
        completion=types.CompletionClientCapabilities(
            dynamic_registration=True,
            completion_item=types.ClientCompletionItemOptions(snippet_support=True),
        ),
    ),
    window=types.WindowClientCapabilities(work_done_progress=True),
    workspace=types.WorkspaceClientCapabilities(
        configuration=True,
        did_change_configuration=types.DidChangeConfigurationClientCapabilities(),
        execute_command=types.ExecuteCommandClientCapabilities(),
    ),
)

ADD_SOURCE = (
    '''\
import math


def add(a, b):
    """Return the sum of a and b.

    >>> add(2, 3)
    5
    """
'''
    + "    \n"
)
ADD_BODY = "return a + b\n"
# The blank line after the docstring, at the body's indentation.
ADD_CURSOR = types.Position(line=9, character=4)


class Session:
    """A started server plus what it told us, with waits that time out."""

    def __init__(self, client: LanguageClient) -> None:
        self.client = client
        self.statuses: list[dict[str, Any]] = []
        self.verifications: list[dict[str, Any]] = []
        self.versions: dict[str, int] = {}

        @client.feature("phiLsp/status")
        def _status(ls: Any, params: Any) -> None:
            self.statuses.append(_plain(params))

        @client.feature("phiLsp/verification")
        def _verification(ls: Any, params: Any) -> None:
            self.verifications.append(_plain(params))

        # A failed load asks with actions (window/showMessageRequest): recorded with the
        # messages; answered with ``self.choice`` (None: dismissed).
        self.requests: list[types.ShowMessageRequestParams] = []
        self.choice: str | None = None

        @client.feature(types.WINDOW_SHOW_MESSAGE_REQUEST)
        def _request(ls: Any, params: types.ShowMessageRequestParams) -> Any:
            self.requests.append(params)
            client.messages.append(
                types.ShowMessageParams(type=params.type, message=params.message)
            )
            titles = [a.title for a in params.actions or []]
            return types.MessageActionItem(title=self.choice) if self.choice in titles else None

    async def until(self, cond: Callable[[], Any], timeout: float = 30.0, what: str = "") -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = cond()
            if value:
                return value
            await asyncio.sleep(0.02)
        raise AssertionError(f"timed out waiting for {what or cond}; statuses={self.statuses}")

    async def ready(self, timeout: float = 60.0, after: int = 0) -> dict[str, Any]:
        """The first status past index ``after`` that ends a load: it must be ready."""

        def state() -> Any:
            done = [x for x in self.statuses[after:] if x["state"] in ("ready", "error")]
            return done[0] if done else None

        last = await self.until(state, timeout, "model ready")
        assert last["state"] == "ready", last
        return last

    def open(self, uri: str, text: str, version: int = 1) -> None:
        self.versions[uri] = version
        self.client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                text_document=types.TextDocumentItem(
                    uri=uri, language_id="python", version=version, text=text
                )
            )
        )

    def insert(self, uri: str, line: int, character: int, text: str) -> None:
        self.edit(uri, line, character, line, character, text)

    def edit(self, uri: str, l0: int, c0: int, l1: int, c1: int, text: str) -> None:
        self.versions[uri] += 1
        self.client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(
                    uri=uri, version=self.versions[uri]
                ),
                content_changes=[
                    types.TextDocumentContentChangePartial(
                        range=types.Range(
                            start=types.Position(line=l0, character=c0),
                            end=types.Position(line=l1, character=c1),
                        ),
                        text=text,
                    )
                ],
            )
        )

    def inline_params(self, uri: str, pos: types.Position) -> types.InlineCompletionParams:
        return types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=pos,
            context=types.InlineCompletionContext(
                trigger_kind=types.InlineCompletionTriggerKind.Automatic
            ),
        )

    async def inline(self, uri: str, pos: types.Position, timeout: float = 30.0) -> list[Any]:
        result = await asyncio.wait_for(
            self.client.text_document_inline_completion_async(self.inline_params(uri, pos)),
            timeout,
        )
        if result is None:
            return []
        return list(result.items if hasattr(result, "items") else result)

    def request_inline(self, uri: str, pos: types.Position, msg_id: str) -> Any:
        """Send an inline completion request with a known id (to cancel it later)."""
        return asyncio.wrap_future(
            self.client.protocol.send_request(
                types.TEXT_DOCUMENT_INLINE_COMPLETION, self.inline_params(uri, pos), msg_id=msg_id
            )
        )

    def cancel(self, msg_id: str) -> None:
        # pygls' client does not send $/cancelRequest when a future is cancelled.
        self.client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=msg_id))

    def messages(self, kind: types.MessageType | None = None) -> list[str]:
        return [m.message for m in self.client.messages if kind is None or m.type == kind]


def _plain(value: Any) -> Any:
    """pygls hands custom notification params over as namedtuples: make dicts."""
    if hasattr(value, "_asdict"):
        value = value._asdict()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


@contextlib.asynccontextmanager
async def server(
    tmp_path: Path,
    options: dict[str, Any] | None = None,
    *,
    configuration: dict[str, Any] | None = None,
    capabilities: types.ClientCapabilities = CAPS,
    extra_args: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
) -> AsyncIterator[Session]:
    client = make_test_lsp_client()
    if configuration is not None:
        client.set_configuration(configuration, section="phiLsp")
    env = {**os.environ, **(env or {})}
    log_file = tmp_path / "server.log"
    await client.start_io(*SERVER, "--log-file", str(log_file), *extra_args, env=env)
    session = Session(client)
    try:
        await asyncio.wait_for(
            client.initialize_session(
                types.InitializeParams(
                    capabilities=capabilities,
                    initialization_options=options,
                    process_id=os.getpid(),
                    root_uri=tmp_path.as_uri(),
                )
            ),
            30,
        )
        yield session
        await asyncio.wait_for(client.shutdown_session(), 30)
        assert client._server is not None
        assert client._server.returncode == 0
    finally:
        await stop(client)


async def stop(client: LanguageClient) -> None:
    """pygls' client.stop() waits for the server forever: after a failed test it
    may still be running, so end it first."""
    proc = client._server
    if proc is not None and proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    await client.stop()


def replay_model(tmp_path: Path, text: str, name: str = "body.txt") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return f"replay:{path}"


def doc_uri(tmp_path: Path, name: str = "example.py") -> str:
    return (tmp_path / name).as_uri()


# --- capabilities and lifecycle ------------------------------------------------------


async def test_advertises_inline_completion_and_incremental_sync(tmp_path: Path) -> None:
    client = make_test_lsp_client()
    await client.start_io(*SERVER, "--log-file", str(tmp_path / "log"))
    try:
        result = await client.initialize_session(
            types.InitializeParams(
                capabilities=CAPS,
                initialization_options={"model": replay_model(tmp_path, ADD_BODY)},
            )
        )
        caps = result.capabilities
        assert caps.inline_completion_provider is not None
        sync = caps.text_document_sync
        assert sync.change == types.TextDocumentSyncKind.Incremental
        assert list(caps.execute_command_provider.commands) == ["phiLsp.verifyFunction"]
        # completionFallback is off by default: no duplicate suggestions.
        assert caps.completion_provider is None
        assert caps.position_encoding in (None, types.PositionEncodingKind.Utf16)
        await client.shutdown_session()
        assert client._server.returncode == 0
    finally:
        await stop(client)


async def test_completes_inside_a_function_with_replay(tmp_path: Path) -> None:
    opts = {"model": replay_model(tmp_path, ADD_BODY)}
    async with server(tmp_path, opts) as s:
        status = await s.ready()
        assert status["model"] == opts["model"]
        # Work-done progress while loading: begin ... end.
        kinds = [v.kind for reports in s.client.progress_reports.values() for v in reports]
        assert kinds[0] == "begin" and kinds[-1] == "end"
        uri = doc_uri(tmp_path)
        s.open(uri, ADD_SOURCE)
        items = await s.inline(uri, ADD_CURSOR)
        assert len(items) == 1
        item = items[0]
        assert item.insert_text.strip() == "return a + b"
        assert item.range.start == ADD_CURSOR


async def test_typing_ahead_is_answered_from_the_cache(tmp_path: Path) -> None:
    async with server(tmp_path, {"model": replay_model(tmp_path, ADD_BODY)}) as s:
        await s.ready()
        uri = doc_uri(tmp_path)
        s.open(uri, ADD_SOURCE)
        first = await s.inline(uri, ADD_CURSOR)
        assert first[0].insert_text.startswith("return a + b")
        # The user types the first three characters of the suggestion.
        s.insert(uri, 9, 4, "ret")
        t0 = time.perf_counter()
        items = await s.inline(uri, types.Position(line=9, character=7))
        elapsed_ms = (time.perf_counter() - t0) * 1000
        assert [i.insert_text.rstrip() for i in items] == ["urn a + b"]
        assert elapsed_ms < 500, elapsed_ms  # the bench measures the real figure
        # A pause (the server applies the typed text to its tree), then more typing.
        await asyncio.sleep(0.6)
        s.insert(uri, 9, 7, "urn a")
        items = await s.inline(uri, types.Position(line=9, character=12))
        assert [i.insert_text.rstrip() for i in items] == [" + b"]
        assert items[0].range.start == types.Position(line=9, character=12)
        # Typing something else: the model is asked again, for the new text.
        s.insert(uri, 9, 12, " *")
        items = await s.inline(uri, types.Position(line=9, character=14))
        assert all(not i.insert_text.startswith(" + b") for i in items)


async def test_model_load_failure_keeps_the_server_up_and_says_why(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    async with server(tmp_path, {"model": str(missing)}) as s:
        last = await s.until(
            lambda: s.statuses and s.statuses[-1]["state"] == "error" and s.statuses[-1],
            60,
            "error status",
        )
        assert str(missing) in last["message"]
        errors = await s.until(lambda: s.messages(types.MessageType.Error), 10, "the message")
        assert errors and "phiLsp.model" in errors[0] and str(missing) in errors[0]
        uri = doc_uri(tmp_path)
        s.open(uri, ADD_SOURCE)
        t0 = time.perf_counter()
        assert await s.inline(uri, ADD_CURSOR) == []
        assert time.perf_counter() - t0 < 2
        # Fixing the setting brings completions back without a restart.
        n = len(s.statuses)
        s.client.set_configuration({"model": replay_model(tmp_path, ADD_BODY)}, section="phiLsp")
        s.client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings={}))
        await s.ready(after=n)
        items = await s.inline(uri, ADD_CURSOR)
        assert items and items[0].insert_text.strip() == "return a + b"


async def test_requests_before_the_model_is_ready_get_an_empty_answer_quickly(
    tmp_path: Path,
) -> None:
    # The replay model reads its file while loading: a FIFO holds the load until
    # the test writes the body, so "not ready yet" lasts as long as we want.
    fifo = tmp_path / "slow-body.txt"
    os.mkfifo(fifo)
    async with server(tmp_path, {"model": f"replay:{fifo}"}) as s:
        await s.until(lambda: s.statuses and s.statuses[-1]["state"] == "loading")
        uri = doc_uri(tmp_path)
        s.open(uri, ADD_SOURCE)
        t0 = time.perf_counter()
        assert await s.inline(uri, ADD_CURSOR) == []
        assert time.perf_counter() - t0 < 2
        await asyncio.to_thread(fifo.write_text, ADD_BODY)
        await s.ready()
        assert (await s.inline(uri, ADD_CURSOR))[0].insert_text.strip() == "return a + b"


# --- settings -------------------------------------------------------------------------


async def test_bad_setting_warns_naming_the_key_and_keeps_the_default(tmp_path: Path) -> None:
    opts = {
        "model": replay_model(tmp_path, ADD_BODY),
        "verify": "sometimes",
        "maxNewTokens": -3,
        "noSuchKey": 1,
    }
    async with server(tmp_path, opts) as s:
        await s.ready()
        warnings = " ".join(s.messages(types.MessageType.Warning))
        assert "phiLsp.verify" in warnings and "'off'" in warnings
        assert "phiLsp.maxNewTokens" in warnings
        assert "phiLsp.noSuchKey" in warnings
        uri = doc_uri(tmp_path)
        s.open(uri, ADD_SOURCE)
        assert (await s.inline(uri, ADD_CURSOR))[0].insert_text.strip() == "return a + b"


async def test_changing_the_model_setting_reloads(tmp_path: Path) -> None:
    first = replay_model(tmp_path, ADD_BODY, "first.txt")
    second = replay_model(tmp_path, "return b + a\n", "second.txt")
    async with server(tmp_path, {"model": first}, configuration={"model": first}) as s:
        await s.ready()
        uri = doc_uri(tmp_path)
        s.open(uri, ADD_SOURCE)
        assert (await s.inline(uri, ADD_CURSOR))[0].insert_text.strip() == "return a + b"
        n = len(s.statuses)
        # Pull model: the server asks workspace/configuration for section phiLsp.
        s.client.set_configuration({"model": second}, section="phiLsp")
        s.client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings={}))
        await s.until(lambda: len(s.statuses) > n and s.statuses[-1]["state"] == "ready")
        assert s.statuses[-1]["model"] == second
        assert "loading" in [x["state"] for x in s.statuses[n:]]
        assert (await s.inline(uri, ADD_CURSOR))[0].insert_text.strip() == "return b + a"


async def test_pushed_settings_are_used_without_workspace_configuration(tmp_path: Path) -> None:
    caps = types.ClientCapabilities(
        text_document=CAPS.text_document, window=CAPS.window, workspace=None
    )
    first = replay_model(tmp_path, ADD_BODY, "first.txt")
    second = replay_model(tmp_path, "return b + a\n", "second.txt")
    async with server(tmp_path, {"phiLsp": {"model": first}}, capabilities=caps) as s:
        await s.ready()
        n = len(s.statuses)
        s.client.workspace_did_change_configuration(
            types.DidChangeConfigurationParams(settings={"phiLsp": {"model": second}})
        )
        await s.until(lambda: len(s.statuses) > n and s.statuses[-1]["state"] == "ready")
        assert s.statuses[-1]["model"] == second


async def test_disabling_and_enabling_the_server(tmp_path: Path) -> None:
    opts = {"model": replay_model(tmp_path, ADD_BODY), "enable": False}
    async with server(tmp_path, opts, configuration=opts) as s:
        await s.until(lambda: s.statuses and s.statuses[-1]["state"] == "disabled")
        uri = doc_uri(tmp_path)
        s.open(uri, ADD_SOURCE)
        assert await s.inline(uri, ADD_CURSOR) == []
        n = len(s.statuses)
        s.client.set_configuration({**opts, "enable": True}, section="phiLsp")
        s.client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings={}))
        await s.ready(after=n)
        assert (await s.inline(uri, ADD_CURSOR))[0].insert_text.strip() == "return a + b"


async def test_completion_fallback_offers_the_body_as_a_snippet(tmp_path: Path) -> None:
    opts = {"model": replay_model(tmp_path, "return a + b  # ${x}\n"), "completionFallback": True}
    async with server(tmp_path, opts) as s:
        await s.ready()
        uri = doc_uri(tmp_path)
        s.open(uri, ADD_SOURCE)
        result = await s.client.text_document_completion_async(
            types.CompletionParams(
                text_document=types.TextDocumentIdentifier(uri=uri), position=ADD_CURSOR
            )
        )
        assert result is not None and len(result.items) == 1
        item = result.items[0]
        assert item.insert_text_format == types.InsertTextFormat.Snippet
        assert item.text_edit.new_text.startswith("return a + b  # \\${x\\}")
        assert item.label.startswith("return a + b")


async def test_completion_fallback_is_silent_when_off(tmp_path: Path) -> None:
    async with server(tmp_path, {"model": replay_model(tmp_path, ADD_BODY)}) as s:
        await s.ready()
        uri = doc_uri(tmp_path)
        s.open(uri, ADD_SOURCE)
        result = await s.client.text_document_completion_async(
            types.CompletionParams(
                text_document=types.TextDocumentIdentifier(uri=uri), position=ADD_CURSOR
            )
        )
        assert result is None or list(result.items) == []


async def test_turning_the_completion_fallback_on_registers_it(tmp_path: Path) -> None:
    async with server(tmp_path, {"model": replay_model(tmp_path, ADD_BODY)}) as s:
        registrations: list[Any] = []

        @s.client.feature(types.CLIENT_REGISTER_CAPABILITY)
        def _register(ls: Any, params: types.RegistrationParams) -> None:
            registrations.extend(params.registrations)

        await s.ready()
        s.client.set_configuration({"completionFallback": True}, section="phiLsp")
        s.client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings={}))
        regs = await s.until(lambda: registrations, 10, "client/registerCapability")
        assert regs[0].method == types.TEXT_DOCUMENT_COMPLETION
        uri = doc_uri(tmp_path)
        s.open(uri, ADD_SOURCE)
        result = await s.client.text_document_completion_async(
            types.CompletionParams(
                text_document=types.TextDocumentIdentifier(uri=uri), position=ADD_CURSOR
            )
        )
        assert [i.label for i in result.items] == ["return a + b"]


# --- stale answers and cancellation ---------------------------------------------------


async def test_did_change_between_request_and_answer_gives_no_stale_answer(
    tmp_path: Path,
) -> None:
    opts = {"model": replay_model(tmp_path, ADD_BODY), "debounceMs": 400}
    async with server(tmp_path, opts) as s:
        await s.ready()
        uri = doc_uri(tmp_path)
        s.open(uri, ADD_SOURCE)
        pending = asyncio.ensure_future(s.inline(uri, ADD_CURSOR))
        await asyncio.sleep(0.1)
        s.insert(uri, 9, 4, "x")  # the document moves on while the request waits
        assert await pending == []
        # The next request, for the new version, is answered.
        s.edit(uri, 9, 4, 9, 5, "")
        items = await s.inline(uri, ADD_CURSOR)
        assert items and items[0].insert_text.strip() == "return a + b"


async def test_cancel_request_stops_the_work_in_the_model_worker(tmp_path: Path) -> None:
    # ~300 tokens at 20 ms each: 6 s of "model time" unless the cancel reaches the worker.
    body = "".join(f"x{i} = {i}\n    " for i in range(100)) + "return a + b\n"
    opts = {"model": replay_model(tmp_path, body), "maxNewTokens": 1024}
    async with server(tmp_path, opts, env={"PHI_LSP_REPLAY_DELAY_S": "0.02"}) as s:
        await s.ready()
        uri, other = doc_uri(tmp_path), doc_uri(tmp_path, "other.py")
        s.open(uri, ADD_SOURCE)
        s.open(other, ADD_SOURCE)
        fut = s.request_inline(uri, ADD_CURSOR, "long")
        await asyncio.sleep(0.5)  # generating now
        s.cancel("long")
        with pytest.raises(Exception, match="cancel"):
            await asyncio.wait_for(fut, 2)
        # The worker is one thread: the other document is served only once the
        # cancelled generation has stopped. With max 40 tokens it takes < 1 s itself.
        s.client.workspace_did_change_configuration(
            types.DidChangeConfigurationParams(settings={"phiLsp": {"maxNewTokens": 40}})
        )
        s.client.set_configuration({"maxNewTokens": 40}, section="phiLsp")
        await asyncio.sleep(0.5)  # let the server pull and apply the new setting
        t0 = time.perf_counter()
        items = await s.inline(other, ADD_CURSOR, timeout=20)
        elapsed = time.perf_counter() - t0
        assert items and items[0].insert_text.startswith("x0 = 0")
        assert elapsed < 3.0, f"the cancelled generation kept the worker busy ({elapsed:.1f} s)"


async def test_newer_request_supersedes_the_older_one(tmp_path: Path) -> None:
    opts = {"model": replay_model(tmp_path, ADD_BODY), "debounceMs": 300}
    async with server(tmp_path, opts) as s:
        await s.ready()
        uri = doc_uri(tmp_path)
        s.open(uri, ADD_SOURCE)
        older = asyncio.ensure_future(s.inline(uri, ADD_CURSOR))
        await asyncio.sleep(0.05)
        newer = asyncio.ensure_future(s.inline(uri, ADD_CURSOR))
        assert await older == []
        items = await newer
        assert items and items[0].insert_text.strip() == "return a + b"


# --- verification -----------------------------------------------------------------------


async def test_verified_suggestion_is_announced_to_the_client(tmp_path: Path) -> None:
    opts = {"model": replay_model(tmp_path, ADD_BODY), "verify": "prefer"}
    async with server(tmp_path, opts) as s:
        await s.ready()
        uri = doc_uri(tmp_path)
        s.open(uri, ADD_SOURCE)
        items = await s.inline(uri, ADD_CURSOR)
        assert items and items[0].insert_text.strip() == "return a + b"
        note = await s.until(lambda: s.verifications and s.verifications[-1], 10)
        assert note["uri"] == uri
        assert note["status"] == "passed"
        assert note["passed"] == 1 and note["failed"] == 0
        assert note["range"]["start"] == {"line": 9, "character": 4}


async def test_verify_function_command_reports_failures(tmp_path: Path) -> None:
    source = ADD_SOURCE.replace("    \n", "    return a - b\n")
    async with server(tmp_path, {"model": replay_model(tmp_path, ADD_BODY)}) as s:
        await s.ready()
        uri = doc_uri(tmp_path)
        s.open(uri, source)
        reply = await s.client.workspace_execute_command_async(
            types.ExecuteCommandParams(
                command="phiLsp.verifyFunction",
                arguments=[uri, {"line": 5, "character": 4}],
            )
        )
        assert reply["status"] == "failed"
        assert reply["passed"] == 0 and reply["failed"] == 1
        assert reply["results"][0]["got"].strip() == "-1"
        shown = await s.until(lambda: [m for m in s.messages() if "add" in m], 10)
        assert "0 of 1" in shown[-1]


# --- the tiny model ----------------------------------------------------------------------


def _has_cuda() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:
        return False


async def test_completes_with_the_tiny_model(tmp_path: Path, tiny_dir: Path) -> None:
    # Asking for CUDA on a machine without it: the CPU, and exactly one warning.
    opts = {"model": "tiny", "maxNewTokens": 24, "device": "cuda"}
    async with server(tmp_path, opts) as s:
        status = await s.ready(timeout=120)
        uri = doc_uri(tmp_path)
        s.open(uri, ADD_SOURCE)
        items = await s.inline(uri, ADD_CURSOR, timeout=120)
        # A real model: the answer is not known, but it is text for the body.
        assert len(items) == 1 and items[0].insert_text.strip()
        assert items[0].range.start == ADD_CURSOR
        if not _has_cuda():
            assert status["device"] == "cpu"
            # The weights' variant shows with the state (tiny stays float32 under auto).
            assert status["dtype"] == "float32" and "float32" in status["message"]
            gpu_warnings = [m for m in s.messages(types.MessageType.Warning) if "CUDA" in m]
            assert len(gpu_warnings) == 1, s.messages()
