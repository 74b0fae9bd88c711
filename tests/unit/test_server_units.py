"""The server's own logic, in-process: edits, typed-ahead, command arguments.

The protocol itself is covered end to end in tests/e2e/test_server_*.py; these
pin the small decisions that are hard to reach exactly from outside.
"""

from __future__ import annotations

import asyncio
import io
import threading
from pathlib import Path

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams

from phi_lsp.completion import Completion
from phi_lsp.documents import Document
from phi_lsp.server.app import PhiLanguageServer
from phi_lsp.server.framing import FrameReader, FrameTooLarge
from phi_lsp.server.models import (
    EngineConfig,
    ModelManager,
    ModelStatus,
    load_completer,
    needs_reload,
    resolve_device,
)
from phi_lsp.server.store import Shown, _offset, valid_text
from phi_lsp.server.verify_command import function_at, parse_args, reply_of, summary
from phi_lsp.settings import Settings
from phi_lsp.verify import VerifyResult

URI = "file:///t.py"
SOURCE = 'def f(x):\n    """Double."""\n    \n'


def _server(text: str = SOURCE) -> PhiLanguageServer:
    ls = PhiLanguageServer()
    ls.open_document(types.TextDocumentItem(uri=URI, language_id="python", version=1, text=text))
    return ls


def _insert(ls: PhiLanguageServer, version: int, line: int, ch: int, text: str) -> None:
    pos = types.Position(line=line, character=ch)
    ls.change_document(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=URI, version=version),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(start=pos, end=pos), text=text
                )
            ],
        )
    )


def _show(ls: PhiLanguageServer, text: str, line: int = 2, ch: int = 4) -> None:
    pos = {"line": line, "character": ch}
    c = Completion("f", 0, text, {"start": pos, "end": dict(pos)}, 1.0)
    entry = ls.store.get(URI)
    assert entry is not None
    ls.store.show(URI, Shown(line, ch, c, entry.version))


def _flush(ls: PhiLanguageServer) -> Document:
    """The document with every edit applied (parsed on the store's parse thread)."""
    snap = asyncio.run(ls.store.snapshot(URI))
    assert snap is not None and snap.doc is not None
    return snap.doc


def test_keystrokes_are_coalesced_into_one_edit() -> None:
    ls = _server()
    for i, c in enumerate("return"):
        _insert(ls, 2 + i, 2, 4 + i, c)
    entry = ls.store.get(URI)
    assert entry is not None and [e.text for e in entry.pending] == ["return"]
    doc = _flush(ls)
    assert doc.line_text(2) == "    return"
    assert doc.version == 7


def test_typed_ahead_serves_the_rest_of_the_suggestion() -> None:
    ls = _server()
    _show(ls, "return x * 2")
    _insert(ls, 2, 2, 4, "re")
    _insert(ls, 3, 2, 6, "t")
    got = ls.store.typed_ahead(URI, 2, 7)
    assert got is not None and got.text == "urn x * 2"
    assert got.range["start"] == {"line": 2, "character": 7}
    # Anywhere else, or after text that is not the suggestion: no shortcut.
    assert ls.store.typed_ahead(URI, 2, 6) is None
    _insert(ls, 4, 2, 7, "X")
    assert ls.store.typed_ahead(URI, 2, 8) is None


def test_typed_ahead_survives_a_flush_by_rebasing_its_anchor() -> None:
    ls = _server()
    _show(ls, "return x * 2")
    _insert(ls, 2, 2, 4, "return")
    _flush(ls)  # typing paused: the text reached the document
    _insert(ls, 3, 2, 10, " x")
    got = ls.store.typed_ahead(URI, 2, 12)
    assert got is not None and got.text == " * 2"


def test_typed_ahead_counts_utf16_units() -> None:
    ls = _server()
    _show(ls, "s = '😀' + x")
    _insert(ls, 2, 2, 4, "s = '😀")  # the emoji is two UTF-16 units
    assert ls.store.typed_ahead(URI, 2, 11) is not None
    assert ls.store.typed_ahead(URI, 2, 10) is None


def test_an_edit_elsewhere_ends_the_shortcut() -> None:
    ls = _server()
    _show(ls, "return x * 2")
    _insert(ls, 2, 0, 0, "# note\n")
    _insert(ls, 3, 3, 4, "r")
    assert ls.store.typed_ahead(URI, 3, 5) is None


def test_lone_surrogates_keep_their_utf16_width() -> None:
    text = "a\ud800b\udfffc"
    clean = valid_text(text)
    assert clean == "a\ufffdb\ufffdc"
    assert len(clean.encode("utf-16-le")) == len(text.encode("utf-16-le", "surrogatepass"))


def test_function_at_finds_methods_and_the_enclosing_function() -> None:
    src = (
        "class A:\n"
        "    def m(self):\n"
        "        def inner():\n"
        "            return 1\n"
        "        return inner()\n"
        "\n"
        "@dec\n"
        "def g():\n"
        "    pass\n"
    )
    assert function_at(src, 3)[:2] == ("A.m", 2)
    assert function_at(src, 6)[:2] == ("g", 8)  # on the decorator line
    name, _, why = function_at(src, 5)
    assert name is None and "no function at line 6" in why
    name, _, why = function_at("def broken(:\n", 0)
    assert name is None and "does not parse" in why


@pytest.mark.parametrize(
    "args",
    [[], ["file:///x.py"], [1, {"line": 0}], ["u", {"line": -1}], ["u", {"line": "2"}], "u"],
)
def test_verify_command_rejects_bad_arguments(args: object) -> None:
    with pytest.raises(JsonRpcInvalidParams, match="phiLsp.verifyFunction"):
        parse_args(args)  # type: ignore[arg-type]


def test_verify_summary_names_the_first_failure() -> None:
    reply = reply_of(
        VerifyResult(
            "failed",
            passed=1,
            failed=1,
            results=[
                {"source": "f(1)", "expected": "2", "got": "2", "ok": True},
                {"source": "f(2)", "expected": "4", "got": "5", "ok": False},
            ],
        )
    )
    text = summary("f", reply)
    assert text == "f: 1 of 2 examples passed; first failure: f(2) expected 4 got 5"


# --- the model: one loading path, reload only where loading depends on the change ----------


def test_only_settings_that_loading_depends_on_reload() -> None:
    base = Settings(model="replay:/tmp/x.txt")
    assert not needs_reload(base, base.replace(max_new_tokens=9, verify="prefer"))
    # A remote model's name matters only to an openai: model.
    assert not needs_reload(base, base.replace(remote_model="gpt"))
    remote = Settings(model="openai:http://h/v1")
    assert needs_reload(remote, remote.replace(remote_model="gpt"))
    for change in ({"model": "tiny"}, {"device": "cpu"}, {"dtype": "float16"}, {"enable": False}):
        assert needs_reload(base, base.replace(**change)), change


def test_asking_for_cuda_without_one_loads_on_the_cpu(caplog: pytest.LogCaptureFixture) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    config = EngineConfig.of(Settings(model="tiny", device="cuda"))
    assert resolve_device(config) == "cpu"
    assert "no CUDA GPU" in caplog.text
    # Not a local model: the device is the remote's business.
    assert resolve_device(EngineConfig.of(Settings(model="replay:/x", device="cuda"))) == "cuda"


def test_model_manager_reports_its_states_in_order(tmp_path: Path) -> None:
    body = tmp_path / "body.txt"
    body.write_text("return a + b\n")
    seen: list[ModelStatus] = []
    ready = threading.Event()

    def listen(status: ModelStatus) -> None:
        seen.append(status)
        if status.state in ("ready", "error"):
            ready.set()

    manager = ModelManager(listen)
    settings = Settings(model=f"replay:{body}")
    try:
        manager.start(settings)
        assert ready.wait(30)
        assert [s.state for s in seen] == ["loading", "ready"]
        assert manager.completer is not None and manager.status.device == "cpu"
        first = manager.completer
        # A setting the engine does not depend on: same model, a fresh Completer.
        assert manager.apply(settings, settings.replace(max_new_tokens=7)) is False
        assert manager.completer is not first and manager.completer.settings.max_new_tokens == 7
        # One it does: a reload, reported again.
        ready.clear()
        assert manager.apply(settings, settings.replace(model="replay:/nowhere.txt")) is True
        assert manager.completer is None
        assert ready.wait(30)
        assert seen[-1].state == "error" and "nowhere" in seen[-1].message
    finally:
        manager.close()


def test_the_api_loads_through_the_same_path(tmp_path: Path) -> None:
    body = tmp_path / "body.txt"
    body.write_text("return a + b\n")
    settings = Settings(model=f"replay:{body}")
    first = load_completer(settings)
    again = load_completer(settings.replace(max_new_tokens=5))
    assert again is first and again.settings.max_new_tokens == 5  # one engine per config


# --- framing and the over-the-limit text path ----------------------------------------------


def test_frame_reader_resynchronises_and_refuses_huge_claims() -> None:
    body = b'{"jsonrpc": "2.0", "method": "x"}'
    good = b"Content-Length: %d\r\n\r\n" % len(body) + body
    stream = io.BytesIO(
        b"Content-Length: nope\r\n\r\n"  # not a number: ignored
        + b"H" * 20_000  # an endless header line: skipped
        + b"\r\n"
        + b"garbage"
        + good  # the header after leftovers on the same line is found
        + good
        + b"Content-Length: 99999999999\r\n\r\n"
    )
    reader = FrameReader(stream, max_body=1 << 20)
    assert reader.read() == body
    assert reader.read() == body
    with pytest.raises(FrameTooLarge, match="99999999999"):
        reader.read()
    assert FrameReader(io.BytesIO(b"Content-Length: 10\r\n\r\nshort")).read() is None  # EOF


@pytest.mark.parametrize(
    ("text", "position", "expected"),
    [
        ("ab\ncd\nef", (1, 1), 4),
        ("ab\r\ncd\ref", (2, 1), 8),  # CRLF and a lone CR both end a line
        ("a😀b\nx", (0, 3), 2),  # the emoji is two UTF-16 units, one str index
        ("ab\ncd", (5, 0), 5),  # past the last line: the end
    ],
)
def test_offsets_in_text_too_big_to_parse(
    text: str, position: tuple[int, int], expected: int
) -> None:
    assert _offset(text, *position) == expected
