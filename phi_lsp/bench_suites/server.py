"""``phi-lsp bench --suite server``: what the language server adds around the model.

The real ``phi-lsp --stdio`` subprocess, a minimal JSON-RPC client over pipes, a
5,000-line file and a ``replay:`` model (so the model's own time is tiny and known).

- ``overhead``: request written → answer read, minus the model time the server
  logged for that request (``logLevel`` debug), over requests that miss the
  suggestion cache (each asks for a different function). p50/p95 in ms.
- ``typed_ahead``: the user types the suggestion one character at a time; each
  keystroke is a ``didChange`` + a request answered from the cache. p50/p95 in ms
  (goal: p50 < 5 ms on the CI machine).

Round-trip figures include the client's own JSON and pipe work, so they are an upper
bound of the server's share; ``ratio_*`` relate them to a bare round trip
(``$/phiLsp/ping`` → MethodNotFound) measured the same way, for noisy machines.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

FILE_LINES = 5000
BODY = "result = compute(value)\n    return result\n"
_TIMING = re.compile(
    r"suggestion (\S+):(\d+):(\d+) in ([\d.]+) ms \(model ([\d.]+) ms, cached (\w+)\)"
)


def build_file(lines: int = FILE_LINES) -> tuple[str, list[tuple[int, int]]]:
    """A module of ``lines`` lines; every other function has only a docstring.

    Returns the text and the (line, character) cursor of each empty body.
    """
    out: list[str] = ['"""A generated module for the server benchmark."""', "import math", ""]
    cursors: list[tuple[int, int]] = []
    i = 0
    while len(out) < lines - 12:
        out += ["", f"def func_{i}(value, scale={i}):", f'    """Scale value by {i}.', ""]
        out += [f"    >>> func_{i}(2)", f"    {2 * i}", '    """']
        if i % 2:
            cursors.append((len(out), 4))
            out.append("    ")
        else:
            out += ["    result = value * scale", "    return math.floor(result)"]
        out.append("")
        i += 1
    return "\n".join(out) + "\n", cursors


class _Client:
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
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                st = self.statuses.get(timeout=0.1)
            except queue.Empty:
                continue
            if st["state"] == state:
                return st
            if st["state"] == "error":
                raise RuntimeError(st["message"])
        raise RuntimeError(f"server not {state} after {timeout} s")

    def timing_for(self, line: int, character: int, timeout: float = 5) -> tuple[float, bool]:
        """(model ms, cached) from the server's debug line for this cursor."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                text = self.logs.get(timeout=0.1)
            except queue.Empty:
                continue
            m = _TIMING.search(text)
            if m and int(m.group(2)) == line and int(m.group(3)) == character:
                return float(m.group(5)), m.group(6) == "True"
        raise RuntimeError("the server did not log its timing (is logLevel debug?)")

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


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    xs = sorted(values)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def _summary(values: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(_pct(values, 0.5), 3),
        "p95_ms": round(_pct(values, 0.95), 3),
        "mean_ms": round(statistics.fmean(values), 3) if values else float("nan"),
        "n": len(values),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    runs = max(1, int(getattr(args, "runs", 3) or 3))
    text, cursors = build_file()
    with tempfile.TemporaryDirectory(prefix="phi-lsp-bench-") as tmp:
        body = Path(tmp, "body.txt")
        body.write_text(BODY, encoding="utf-8")
        src = Path(tmp, "module.py")
        uri = src.as_uri()
        client = _Client(
            [sys.executable, "-m", "phi_lsp", "--stdio", "--log-file", str(Path(tmp, "log"))]
        )
        try:
            client.request(
                "initialize",
                {
                    "processId": os.getpid(),
                    "capabilities": {"textDocument": {"inlineCompletion": {}}},
                    "initializationOptions": {"model": f"replay:{body}", "logLevel": "debug"},
                },
            )
            client.notify("initialized", {})
            client.wait_status("ready")
            client.notify(
                "textDocument/didOpen",
                {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": text}},
            )
            version = 1

            def inline(line: int, ch: int) -> tuple[float, str]:
                ms, result = client.request(
                    "textDocument/inlineCompletion",
                    {
                        "textDocument": {"uri": uri},
                        "position": {"line": line, "character": ch},
                        "context": {"triggerKind": 2},
                    },
                )
                items = (result or {}).get("items") or []
                return ms, items[0]["insertText"] if items else ""

            ping = [client.request("$/phiLsp/ping", {})[0] for _ in range(20 * runs)]

            # Cache misses: a different function each time (more than the cache holds).
            overhead, model, rtt = [], [], []
            for i in range(20 * runs):
                line, ch = cursors[i % len(cursors)]
                ms, got = inline(line, ch)
                if not got:
                    raise RuntimeError(f"no suggestion at {line}:{ch}")
                model_ms, _cached = client.timing_for(line, ch)
                rtt.append(ms)
                model.append(model_ms)
                overhead.append(ms - model_ms)

            # Typing ahead: type the suggestion's first line one character at a time.
            typed, hits = [], 0
            first_line = BODY.split("\n")[0]
            for k in range(max(1, runs)):
                line, ch = cursors[(7 * k + 3) % len(cursors)]
                _ms, got = inline(line, ch)
                client.timing_for(line, ch)
                for j, c in enumerate(first_line[:-1]):
                    version += 1
                    client.notify(
                        "textDocument/didChange",
                        {
                            "textDocument": {"uri": uri, "version": version},
                            "contentChanges": [
                                {
                                    "range": {
                                        "start": {"line": line, "character": ch + j},
                                        "end": {"line": line, "character": ch + j},
                                    },
                                    "text": c,
                                }
                            ],
                        },
                    )
                    ms, got = inline(line, ch + j + 1)
                    _model_ms, cached = client.timing_for(line, ch + j + 1)
                    if got.startswith(first_line[j + 1 :]):
                        typed.append(ms)
                        hits += int(cached)
        finally:
            client.close()
    ping_p50 = _pct(ping, 0.5)
    return {
        "model": "replay",
        "file_lines": text.count("\n"),
        "overhead": _summary(overhead),
        "round_trip": _summary(rtt),
        "model_time": _summary(model),
        "typed_ahead": {**_summary(typed), "cache_hits": hits, "goal_p50_ms": 5.0},
        "bare_round_trip": _summary(ping),
        "ratio_overhead_to_bare_p50": round(_pct(overhead, 0.5) / ping_p50, 2),
        "ratio_typed_ahead_to_bare_p50": round(_pct(typed, 0.5) / ping_p50, 2),
    }


if __name__ == "__main__":
    print(json.dumps(run(argparse.Namespace(runs=3))))
