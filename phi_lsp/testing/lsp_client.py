"""A minimal JSON-RPC client for a language server subprocess over its pipes.

For benchmarks and tests only (nothing the server, CLI or API runs imports it): it
timestamps every message as it is read, so round trips can be measured without a
framework's own latency; a request from the server is answered with ``null``.
"""

from __future__ import annotations

import json
import queue
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def first_match(
    box: queue.Queue[T], match: Callable[[T], R | None], timeout: float, what: str
) -> R:
    """Take messages from ``box`` until ``match`` returns something; RuntimeError
    ``"{what} after {timeout} s"`` when none does in time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            item = box.get(timeout=0.1)
        except queue.Empty:
            continue
        found = match(item)
        if found is not None:
            return found
    raise RuntimeError(f"{what} after {timeout} s")


class LspClient:
    """JSON-RPC over the server's pipes; a thread reads and timestamps messages."""

    def __init__(self, argv: list[str]) -> None:
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        self._responses: dict[Any, queue.Queue[tuple[float, dict[str, Any]]]] = {}
        self._lock = threading.Lock()
        self.logs: queue.Queue[str] = queue.Queue()
        self.statuses: queue.Queue[dict[str, Any]] = queue.Queue()
        self._next = 0
        threading.Thread(target=self._read, daemon=True).start()

    def _box(self, msg_id: Any) -> queue.Queue[tuple[float, dict[str, Any]]]:
        with self._lock:
            return self._responses.setdefault(msg_id, queue.Queue())

    def _read(self) -> None:
        out = self.proc.stdout
        assert out is not None
        while True:
            length = 0
            while True:
                line = out.readline()
                if not line:
                    return
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
                elif line == b"\r\n":
                    break
            msg = json.loads(out.read(length))
            now = time.perf_counter()
            method = msg.get("method")
            if method is None:
                self._box(msg.get("id")).put((now, msg))
            elif method == "window/logMessage":
                self.logs.put(msg["params"]["message"])
            elif method == "phiLsp/status":
                self.statuses.put(msg["params"])
            elif "id" in msg:  # a request from the server: answer it plainly
                self._write({"jsonrpc": "2.0", "id": msg["id"], "result": None})

    def _write(self, obj: dict[str, Any]) -> None:
        body = json.dumps(obj).encode()
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.proc.stdin.flush()

    def notify(self, method: str, params: Any) -> None:
        self._write({"jsonrpc": "2.0", "method": method, "params": params})

    def request(self, method: str, params: Any, timeout: float = 60) -> tuple[float, Any]:
        """(round trip in ms, result)."""
        self._next += 1
        msg_id = self._next
        box = self._box(msg_id)
        t0 = time.perf_counter()
        self._write({"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params})
        try:
            t1, msg = box.get(timeout=timeout)
        except queue.Empty:
            raise RuntimeError(f"no answer to {method} in {timeout} s") from None
        with self._lock:
            self._responses.pop(msg_id, None)
        return (t1 - t0) * 1000, msg.get("result", msg.get("error"))

    def wait_status(self, state: str, timeout: float = 120) -> dict[str, Any]:
        """The next ``phiLsp/status`` in ``state``; RuntimeError on an "error" status."""

        def match(st: dict[str, Any]) -> dict[str, Any] | None:
            if st["state"] == "error":
                raise RuntimeError(st["message"])
            return st if st["state"] == state else None

        return first_match(self.statuses, match, timeout, f"server not {state}")

    def close(self) -> None:
        try:
            self.request("shutdown", None, timeout=10)
            self.notify("exit", None)
            self.proc.wait(timeout=10)
        except Exception:
            pass
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
