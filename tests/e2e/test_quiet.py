"""No noise: a CLI completion and an editor session on ``tiny`` raise no FutureWarning /
DeprecationWarning (run with ``-W error``: one would fail the run), and what libraries
print goes to the log at its level, not to the server's stderr (shown as errors)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from lsprotocol import types
from test_server_e2e import ADD_CURSOR, ADD_SOURCE, doc_uri, server

ROOT = Path(__file__).resolve().parents[2]
STRICT = ["-W", "error::FutureWarning", "-W", "error::DeprecationWarning"]


def test_cli_completion_raises_no_deprecation(tmp_path: Path, tiny_dir: Path) -> None:
    demo = tmp_path / "demo.py"
    demo.write_text(ADD_SOURCE)
    p = subprocess.run(
        [sys.executable, *STRICT, "-m", "phi_lsp", "complete", str(demo), "--model", "tiny"]
        + ["--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    assert json.loads(p.stdout)["completions"][0]["text"].strip()
    assert "FutureWarning" not in p.stderr and "DeprecationWarning" not in p.stderr
    assert "Traceback" not in p.stderr and "%|" not in p.stderr


async def test_an_editor_session_is_quiet(
    tmp_path: Path, tiny_dir: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    env = {"PYTHONWARNINGS": "error::FutureWarning,error::DeprecationWarning"}
    async with server(tmp_path, {"model": "tiny", "maxNewTokens": 24}, env=env) as s:
        await s.ready(timeout=180)
        uri = doc_uri(tmp_path)
        s.open(uri, ADD_SOURCE)
        items = await s.inline(uri, ADD_CURSOR, timeout=120)
        assert items and items[0].insert_text.strip()
        # Nothing the client shows as an error, no pop-up at all.
        errors = [m.message for m in s.client.log_messages if m.type == types.MessageType.Error]
        assert not errors, errors
        assert not s.client.messages, [m.message for m in s.client.messages]
    # The server's stderr (what an editor shows as [error]) got nothing.
    err = capfd.readouterr().err
    assert not err.strip(), err[-3000:]
    log = (tmp_path / "server.log").read_text()
    assert "FutureWarning" not in log and "DeprecationWarning" not in log
    assert not re.search(r" ERROR ", log), log[-3000:]
    # What libraries did print is in the log, at its level (torch's glog-style notes
    # when torchao is installed are warnings; nothing of it an error).
    for line in log.splitlines():
        if "phi_lsp.stderr" in line:
            assert " WARNING " in line or " INFO " in line, line


def _frame(obj: dict[str, object]) -> bytes:
    body = json.dumps(obj).encode()
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


@pytest.mark.parametrize("how", ["shutdown-exit", "sigterm", "stdin-closed"])
def test_a_restart_is_not_logged_as_an_error(tmp_path: Path, how: str) -> None:
    """What an editor's restart does to the server: ask it to exit, terminate it, or
    close its stdin. None of it is an error in the log or on stderr."""
    import os
    import signal
    import time

    body = tmp_path / "body.txt"
    body.write_text("return a + b\n")
    log = tmp_path / "server.log"
    p = subprocess.Popen(
        [sys.executable, "-m", "phi_lsp", "--stdio", "--log-file", str(log)]
        + ["--model", f"replay:{body}"],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert p.stdin is not None and p.stderr is not None
    init = {"capabilities": {}, "processId": os.getpid()}
    p.stdin.write(_frame({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": init}))
    p.stdin.write(_frame({"jsonrpc": "2.0", "method": "initialized", "params": {}}))
    p.stdin.flush()
    deadline = time.monotonic() + 60
    while "ready on" not in (log.read_text() if log.exists() else ""):
        assert time.monotonic() < deadline, "the server did not get ready"
        time.sleep(0.1)
    if how == "shutdown-exit":
        p.stdin.write(_frame({"jsonrpc": "2.0", "id": 2, "method": "shutdown"}))
        p.stdin.write(_frame({"jsonrpc": "2.0", "method": "exit"}))
        p.stdin.flush()
    elif how == "sigterm":
        p.send_signal(signal.SIGTERM)
    else:
        p.stdin.close()
    try:
        p.wait(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
    err = p.stderr.read().decode()
    assert not err.strip(), err
    assert not re.search(r" (ERROR|CRITICAL) ", log.read_text()), log.read_text()
