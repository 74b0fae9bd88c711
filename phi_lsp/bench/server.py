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
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

from phi_lsp.bench.stats import p50, summary
from phi_lsp.testing.lsp_client import LspClient, first_match

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


def timing_for(
    client: LspClient, line: int, character: int, timeout: float = 5
) -> tuple[float, bool]:
    """(model ms, cached) from the server's debug line for this cursor."""

    def match(text: str) -> tuple[float, bool] | None:
        m = _TIMING.search(text)
        if m and int(m.group(2)) == line and int(m.group(3)) == character:
            return float(m.group(5)), m.group(6) == "True"
        return None

    what = "the server did not log its timing (is logLevel debug?)"
    return first_match(client.logs, match, timeout, what)


def run(args: argparse.Namespace) -> dict[str, Any]:
    runs = max(1, int(getattr(args, "runs", 3) or 3))
    text, cursors = build_file()
    with tempfile.TemporaryDirectory(prefix="phi-lsp-bench-") as tmp:
        body = Path(tmp, "body.txt")
        body.write_text(BODY, encoding="utf-8")
        src = Path(tmp, "module.py")
        uri = src.as_uri()
        client = LspClient(
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
                model_ms, _cached = timing_for(client, line, ch)
                rtt.append(ms)
                model.append(model_ms)
                overhead.append(ms - model_ms)

            # Typing ahead: type the suggestion's first line one character at a time.
            typed, hits = [], 0
            first_line = BODY.split("\n")[0]
            for k in range(max(1, runs)):
                line, ch = cursors[(7 * k + 3) % len(cursors)]
                _ms, got = inline(line, ch)
                timing_for(client, line, ch)
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
                    _model_ms, cached = timing_for(client, line, ch + j + 1)
                    if got.startswith(first_line[j + 1 :]):
                        typed.append(ms)
                        hits += int(cached)
        finally:
            client.close()
    ping_p50 = p50(ping, 6)
    return {
        "model": "replay",
        "file_lines": text.count("\n"),
        "overhead": summary(overhead),
        "round_trip": summary(rtt),
        "model_time": summary(model),
        "typed_ahead": {**summary(typed), "cache_hits": hits, "goal_p50_ms": 5.0},
        "bare_round_trip": summary(ping),
        "ratio_overhead_to_bare_p50": round(p50(overhead, 6) / ping_p50, 2),
        "ratio_typed_ahead_to_bare_p50": round(p50(typed, 6) / ping_p50, 2),
    }


if __name__ == "__main__":
    print(json.dumps(run(argparse.Namespace(runs=3))))
