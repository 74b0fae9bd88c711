"""The host side of the sandbox's channel: strict messages, in order, within caps.

This process believes nothing the sandbox says beyond the strict shape of each message
(docs/contracts.md §3): size caps per line and in total, checked before anything is
parsed; a flat JSON object (no nesting: a linear pattern first), exact keys and types, the
run's nonce; results in order, one per example. A flood or garbage ends the run (``_Run``)
without growing this process. Part of ``sandbox.py``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import selectors
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from phi_lsp.verify._process import _READY_TIMEOUT_S, _Child

_EXIT_GRACE_S = 2.0  # after "done": time for the runner to report the child's exit
LINE_CAP = 10 << 20  # bytes of one message (3 fields of 256 Ki characters, \u-escaped)
TOTAL_CAP = 40 << 20  # bytes read from one run

# A flat JSON object: string keys; string, integer, true/false/null values. Linear, no
# nesting: checked before json.loads ever sees the line.
_STR = r'"(?:[^"\\\x00-\x1f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*"'
_VALUE = rf"(?:{_STR}|-?\d{{1,19}}|true|false|null)"
_FLAT = re.compile(rf"\{{\s*(?:{_STR}\s*:\s*{_VALUE}\s*(?:,\s*{_STR}\s*:\s*{_VALUE}\s*)*)?\}}")
_PROC = ("own", "hidden", "host")
_SCHEMAS: dict[str, dict[str, tuple[type, ...]]] = {
    "isolation": {
        "isolation": (bool,),
        "seccomp": (bool,),
        "capabilities": (bool,),
        "rlimits": (bool,),
        "landlock": (bool,),
        "proc": (str,),
    },
    "load": {"load": (str,)},
    "load-error": {"load": (str,), "error": (str,)},
    "i": {"i": (int,), "out": (str,), "exc": (str, type(None)), "value": (str, type(None))},
    "done": {"done": (bool,)},
    "exit": {"exit": (int,)},
    "signal": {"signal": (int,)},
}


class ProtocolError(Exception):
    """The sandbox sent something that is not the protocol."""


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict:
    d = dict(pairs)
    if len(d) != len(pairs):
        raise ProtocolError("a repeated key")
    return d


def parse_line(line: bytes, nonce: str | None) -> tuple[str, dict]:
    """One message: (kind, fields without the nonce). Raises ProtocolError."""
    if len(line) > LINE_CAP:
        raise ProtocolError("a message over the size cap")
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError("a message that is not UTF-8") from None
    if not _FLAT.fullmatch(text):
        raise ProtocolError("a message that is not a flat JSON object")
    try:
        msg = json.loads(text, object_pairs_hook=_no_duplicates)
    except ValueError:
        raise ProtocolError("a message that is not JSON") from None
    if nonce is None:
        if msg == {"ready": True} or (
            set(msg) == {"ready", "ns"} and msg["ready"] is True and msg["ns"] is False
        ):
            return "ready", msg
        raise ProtocolError("a message before the job")
    if msg.pop("nonce", None) != nonce:
        raise ProtocolError("a message without the run's nonce")
    for kind, schema in _SCHEMAS.items():
        # type() is exact: true is not an integer here, 1 is not true.
        if set(msg) == set(schema) and all(type(msg[k]) in t for k, t in schema.items()):
            if kind == "load" and msg["load"] != "ok":
                continue
            if kind == "load-error":
                if msg["load"] != "error":
                    continue
                kind = "load"
            if kind in ("isolation", "done") and msg[kind] is not True:
                continue
            if kind == "isolation" and msg["proc"] not in _PROC:
                continue
            return kind, msg
    raise ProtocolError("a message of unknown shape")


@dataclass
class _Run:
    """What one run told us, checked: how it ended and the raw results in order."""

    ended: str  # done | timeout | cancelled | eof | overflow | violation | no-start | crash
    mode: str
    python: str
    results: list[dict] = field(default_factory=list)
    load_error: str | None = None
    loaded: bool = False
    isolation: dict | None = None
    exit: dict | None = None  # {"exit": n} | {"signal": n}
    problem: str = ""
    ns_failed: bool = False
    start_error: str = ""  # the launcher's last words when it died before ready
    limits: dict = field(default_factory=dict)


class _Session:
    """The order of a run's messages: isolation, load, results 0..n-1, done, exit."""

    def __init__(self, run: _Run, examples: int) -> None:
        self.run, self.examples = run, examples
        self.done = False

    def feed(self, kind: str, msg: dict) -> None:
        run = self.run
        if run.exit is not None:
            raise ProtocolError("a message after the runner's exit report")
        if kind in ("exit", "signal"):
            run.exit = msg
            return
        if self.done:
            raise ProtocolError("a message after done")
        if kind == "isolation":
            if run.isolation is not None or run.loaded or run.load_error is not None:
                raise ProtocolError("an isolation report after the module started loading")
            run.isolation = msg
            return
        if run.isolation is None:
            raise ProtocolError("a message before the isolation report")
        if kind == "load":
            if run.loaded or run.load_error is not None:
                raise ProtocolError("a second load report")
            if msg["load"] == "ok":
                run.loaded = True
            else:
                run.load_error = msg["error"]
            return
        if kind == "i":
            if not run.loaded:
                raise ProtocolError("a result before the module loaded")
            if msg["i"] != len(run.results):
                raise ProtocolError(f"result {msg['i']} out of order")
            if len(run.results) >= self.examples:
                raise ProtocolError("more results than examples")
            run.results.append(msg)
            return
        if kind == "done":
            if run.loaded and len(run.results) < self.examples:
                raise ProtocolError(f"no result for example {len(run.results) + 1}")
            if not run.loaded and run.load_error is None:
                raise ProtocolError("done before the module loaded")
            self.done = True
            return
        raise ProtocolError("a message of unknown shape")  # pragma: no cover


def _drive(child: _Child, job: dict, timeout_s: float, cancel: threading.Event | None) -> _Run:
    run = _Run("eof", child.mode, child.python, limits=job["limits"])
    session = _Session(run, len(job["examples"]))
    nonce: str | None = None
    sel = selectors.DefaultSelector()
    out, stdin = child.proc.stdout, child.proc.stdin
    assert out is not None and stdin is not None
    fd = out.fileno()
    os.set_blocking(fd, False)
    sel.register(fd, selectors.EVENT_READ)
    total = 0
    deadline = time.monotonic() + _READY_TIMEOUT_S
    try:
        while True:
            if child.ready is not None and nonce is None:
                if child.ready.get("ns") is False:
                    run.ns_failed = True
                    run.ended = "no-start"
                    return run
                # The interpreter is up: hand over the job and start the clock.
                nonce = job["nonce"]
                with contextlib.suppress(BrokenPipeError, OSError):
                    stdin.write(json.dumps(job).encode())
                with contextlib.suppress(BrokenPipeError, OSError):
                    stdin.close()
                deadline = time.monotonic() + timeout_s
            if session.done and run.exit is not None:
                run.ended = "done"
                return run
            if cancel is not None and cancel.is_set():
                run.ended = "cancelled"
                return run
            left = deadline - time.monotonic()
            if left <= 0:
                run.ended = "timeout" if nonce is not None else "no-start"
                return run
            if not sel.select(timeout=min(left, 0.02)):
                continue
            try:
                chunk = os.read(fd, 1 << 16)
            except BlockingIOError:
                continue
            if not chunk:
                run.ended = "crash" if run.exit is not None else "eof"
                if child.ready is None:
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        child.proc.wait(timeout=1.0)
                    run.ended, run.start_error = "no-start", child.start_error() or "it exited"
                return run
            total += len(chunk)
            if total > TOTAL_CAP:
                run.ended, run.problem = "overflow", "sent more than the total size cap"
                return run
            child.buffer += chunk
            start = 0
            while True:
                end = child.buffer.find(b"\n", start)
                if end < 0:
                    break
                line = bytes(child.buffer[start:end])
                start = end + 1
                kind, msg = parse_line(line, nonce)
                if kind == "ready":
                    if child.ready is not None:
                        raise ProtocolError("a second ready message")
                    child.ready = msg
                else:
                    session.feed(kind, msg)
                    if session.done and run.exit is None:
                        # Results complete: the runner's exit report follows at once.
                        deadline = min(deadline, time.monotonic() + _EXIT_GRACE_S)
            del child.buffer[:start]
            if len(child.buffer) > LINE_CAP:
                run.ended, run.problem = "overflow", "sent a message over the size cap"
                return run
    except ProtocolError as e:
        run.ended, run.problem = "violation", str(e)
        return run
    except OSError:
        return run
    finally:
        sel.close()
