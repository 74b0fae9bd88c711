"""The server process: exit codes, the editor dying, TCP mode, logging."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from lsprotocol import types
from test_server_e2e import ADD_BODY, ADD_CURSOR, ADD_SOURCE, doc_uri, replay_model, server
from test_server_robustness import RawServer, frame


def _initialize(srv: RawServer, process_id: int | None) -> None:
    srv.send(
        {
            "jsonrpc": "2.0",
            "id": "init",
            "method": "initialize",
            "params": {
                "capabilities": {},
                "processId": process_id,
                "initializationOptions": {"model": "replay:/dev/null"},
            },
        }
    )
    assert "result" in srv.response("init")
    srv.send({"jsonrpc": "2.0", "method": "initialized", "params": {}})


def test_exits_when_the_editor_process_dies(tmp_path: Path) -> None:
    editor = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    srv = RawServer(tmp_path)
    try:
        _initialize(srv, editor.pid)
        time.sleep(0.5)
        assert srv.proc.poll() is None  # the editor is alive: keep serving
        editor.kill()
        editor.wait()
        # stdin stays open (we hold it): only the watchdog can notice.
        assert srv.proc.wait(timeout=10) != 0
        assert "is gone" in (tmp_path / "server.log").read_text()
    finally:
        editor.kill()
        if srv.proc.poll() is None:
            srv.proc.kill()


def test_exit_without_shutdown_exits_with_1_and_eof_ends_the_server(tmp_path: Path) -> None:
    srv = RawServer(tmp_path)
    try:
        _initialize(srv, os.getpid())
        srv.send({"jsonrpc": "2.0", "method": "exit"})
        assert srv.proc.wait(timeout=10) == 1
    finally:
        if srv.proc.poll() is None:
            srv.proc.kill()
    srv = RawServer(tmp_path)
    try:
        _initialize(srv, os.getpid())
        assert srv.proc.stdin is not None
        srv.proc.stdin.close()  # the editor closed the pipe
        assert srv.proc.wait(timeout=10) in (0, 1)
    finally:
        if srv.proc.poll() is None:
            srv.proc.kill()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _read_message(sock: socket.socket, buf: bytearray, timeout: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        head, sep, _ = bytes(buf).partition(b"\r\n\r\n")
        if sep:
            length = next(
                int(h.split(b":")[1])
                for h in head.split(b"\r\n")
                if h.lower().startswith(b"content-length")
            )
            start = len(head) + 4
            if len(buf) >= start + length:
                body = bytes(buf[start : start + length])
                del buf[: start + length]
                return json.loads(body)
        assert time.monotonic() < deadline, "no message from the TCP server"
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        chunk = sock.recv(65536)
        assert chunk, "the TCP server closed the connection"
        buf.extend(chunk)


def test_tcp_mode_serves_a_client(tmp_path: Path) -> None:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "phi_lsp", "--tcp", "--host", "127.0.0.1", "--port", str(port)]
        + ["--log-file", str(tmp_path / "server.log")],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                sock = socket.create_connection(("127.0.0.1", port), timeout=1)
                break
            except OSError:
                assert proc.poll() is None, "the TCP server died"
                assert time.monotonic() < deadline, "the TCP server never listened"
                time.sleep(0.1)
        buf = bytearray()
        with sock:
            model = replay_model(tmp_path, ADD_BODY)
            init = {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {
                    "capabilities": {},
                    "processId": os.getpid(),
                    "initializationOptions": {"model": model},
                },
            }
            sock.sendall(frame(json.dumps(init).encode()))
            while (msg := _read_message(sock, buf)).get("id") != 1:
                pass
            assert msg["result"]["capabilities"]["inlineCompletionProvider"] is not None
            sock.sendall(frame(b'{"jsonrpc": "2.0", "method": "initialized", "params": {}}'))
            while (msg := _read_message(sock, buf)).get("method") != "phiLsp/status" or msg[
                "params"
            ]["state"] not in ("ready", "error"):
                pass
            assert msg["params"]["state"] == "ready"
            sock.sendall(frame(b'{"jsonrpc": "2.0", "id": 2, "method": "shutdown"}'))
            while _read_message(sock, buf).get("id") != 2:
                pass
            sock.sendall(frame(b'{"jsonrpc": "2.0", "method": "exit"}'))
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


async def test_log_level_setting_controls_window_log_message(tmp_path: Path) -> None:
    opts = {"model": replay_model(tmp_path, ADD_BODY), "logLevel": "debug"}
    async with server(tmp_path, opts) as s:
        await s.ready()
        uri = doc_uri(tmp_path)
        s.open(uri, ADD_SOURCE)
        await s.inline(uri, ADD_CURSOR)
        await s.until(lambda: any("suggestion" in m.message for m in s.client.log_messages), 5)
        # Raise the level: info and debug lines stop reaching the client.
        s.client.workspace_did_change_configuration(
            types.DidChangeConfigurationParams(settings={"phiLsp": {"logLevel": "warning"}})
        )
        s.client.set_configuration({"logLevel": "warning"}, section="phiLsp")
        await asyncio.sleep(0.5)  # the server pulls the configuration
        n = len(s.client.log_messages)
        s.insert(uri, 0, 0, "# edited\n")
        await s.inline(uri, types.Position(line=ADD_CURSOR.line + 1, character=4))
        await asyncio.sleep(0.3)
        later = s.client.log_messages[n:]
        assert all(m.type in (types.MessageType.Warning, types.MessageType.Error) for m in later)
    log = (tmp_path / "server.log").read_text()
    assert "phi-lsp 0.1.0 starting" in log


def _descendants(root: int) -> set[int]:
    parent: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", "rb") as f:
                    parent[int(name)] = int(f.read().rsplit(b")", 1)[1].split()[1])
            except (OSError, IndexError):
                continue
    found: set[int] = set()
    frontier = {root}
    while frontier:
        frontier = {p for p, pp in parent.items() if pp in frontier} - found
        found |= frontier
    return found


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except OSError:
        return False


async def test_no_verification_sandbox_outlives_the_server(tmp_path: Path) -> None:
    # The suggestion's doctest sleeps for a minute inside the sandbox.
    body = "import time\n    time.sleep(60)\n    return a + b\n"
    opts = {"model": replay_model(tmp_path, body), "verify": "prefer", "verifyTimeoutMs": 60000}
    async with server(tmp_path, opts) as s:
        await s.ready()
        uri = doc_uri(tmp_path)
        s.open(uri, ADD_SOURCE)
        pending = asyncio.ensure_future(s.inline(uri, ADD_CURSOR, timeout=120))
        assert s.client._server is not None
        kids = await s.until(lambda: _descendants(s.client._server.pid), 20, "a sandbox")
        t0 = time.monotonic()
    # The server is gone (shutdown + exit, exit code 0): so is every sandbox.
    assert time.monotonic() - t0 < 10
    await asyncio.gather(pending, return_exceptions=True)
    deadline = time.monotonic() + 5
    while any(_alive(k) for k in kids) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert not [k for k in kids if _alive(k)]
