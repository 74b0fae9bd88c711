"""Run a function's examples in an isolated child process.

One child per run (``_runner.py``): its own session and process group, a fresh temp
dir as cwd (removed after), a scrubbed environment, rlimits, a wall-clock timeout that
kills the whole group, and — where the OS allows it — mount, network and PID
namespaces with all capabilities dropped. What was applied comes back in
``VerifyResult.sandbox``. A small pool keeps one interpreter started ahead of time
(imports done, waiting for its job): each is used for one run only, so runs stay
isolated from each other while skipping interpreter start-up.
"""

from __future__ import annotations

import ast
import atexit
import contextlib
import json
import math
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from phi_lsp.verify.examples import Check

RUNNER = str(Path(__file__).with_name("_runner.py"))
STATUSES = ("passed", "failed", "error", "timeout", "no-examples")
_READY_TIMEOUT_S = 20.0  # interpreter start-up on a loaded machine
_RESULT_CAP = 8 << 20  # bytes of results read from a child before it is killed


@dataclass(frozen=True)
class Limits:
    """Resource limits of one run. ``cpu_s`` None: derived from the timeout."""

    cpu_s: int | None = None
    address_space_mb: int = 1024
    nproc: int = 64  # binds non-root users only; seccomp blocks new processes
    file_size_mb: int = 16
    open_files: int = 64
    # PHI_LSP_VERIFY_NAMESPACES=0: skip the namespaces (audit-hook fallbacks only).
    namespaces: bool = field(
        default_factory=lambda: os.environ.get("PHI_LSP_VERIFY_NAMESPACES", "1") != "0"
    )

    def for_timeout(self, timeout_s: float) -> dict:
        cpu = self.cpu_s if self.cpu_s is not None else int(math.ceil(timeout_s)) + 1
        return {
            "cpu_s": cpu,
            "address_space_mb": self.address_space_mb,
            "nproc": self.nproc,
            "file_size_mb": self.file_size_mb,
            "open_files": self.open_files,
            "core": 0,
        }


@dataclass
class VerifyResult:
    status: str  # passed | failed | error | timeout | no-examples
    passed: int = 0
    failed: int = 0
    results: list[dict] = field(default_factory=list)  # {source, expected, got, ok, line}
    reason: str = ""
    skipped: list[dict] = field(default_factory=list)  # {line, text, reason}
    elapsed_ms: float = 0.0
    sandbox: dict = field(default_factory=dict)
    function: str = ""
    line: int | None = None  # 1-based line of the def

    @property
    def examples(self) -> int:
        return len(self.results)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["examples"] = self.examples
        return d


def run_checks(
    module_source: str,
    function_name: str,
    checks: Sequence[Check],
    timeout_s: float = 3.0,
    *,
    line_offset: int = 0,
    path: str | None = None,
    cancel: threading.Event | None = None,
    limits: Limits | None = None,
) -> VerifyResult:
    """Run ``checks`` against ``module_source`` (a whole module) in a fresh sandbox.

    ``line_offset`` turns a check's docstring-relative line into a file line
    (``line_offset + check.line``). ``path`` is the module's file, if any: its folder
    goes on ``sys.path`` so that sibling imports work. ``cancel`` kills the child.
    """
    t0 = time.perf_counter()
    limits = limits or Limits()
    if not checks:
        return VerifyResult("no-examples", reason="the docstring has no examples to run")
    try:
        tree = ast.parse(module_source)
    except SyntaxError as e:
        return VerifyResult("error", reason=f"the module does not parse: line {e.lineno}: {e.msg}")
    job = {
        "module": module_source,
        "keep": _statements_to_run(tree),
        "module_name": _module_name(path),
        "path": os.path.abspath(path) if path else None,
        "sys_path": _child_sys_path(path),
        "limits": limits.for_timeout(timeout_s),
        "timeout_s": timeout_s,
        "namespaces": limits.namespaces,
        "checks": [_wire(c) for c in checks],
    }
    rows = [
        {
            "source": c.source.strip(),
            "expected": (c.expected.strip() if c.exc_msg is None else c.expected.rstrip()),
            "got": None,
            "ok": False,
            "line": line_offset + c.line,
        }
        for c in checks
    ]
    try:
        events, ended = _POOL.run(job, timeout_s, cancel)
    except OSError as e:  # cannot fork, too many open files, ...
        return VerifyResult("error", reason=f"could not start the sandbox: {e}")
    result = _interpret(events, ended, rows, timeout_s, function_name)
    result.elapsed_ms = round((time.perf_counter() - t0) * 1000, 1)
    return result


def isolation_summary(sandbox: dict, timeout_s: float) -> dict:
    """The ``sandbox`` JSON object of ``phi-lsp verify --json``."""
    return {
        "process": "own session and process group, killed as a group on timeout",
        "cwd": "fresh temp dir, removed after",
        "environment": "scrubbed (PATH, HOME=temp dir, LANG only)",
        "timeout_s": timeout_s,
        **sandbox,
    }


# --- job -------------------------------------------------------------------------------------


def _wire(c: Check) -> dict:
    return {
        "kind": c.kind,
        "source": c.source,
        "expected": c.expected,
        "exc_msg": c.exc_msg,
        "options": dict(c.options),
    }


def _statements_to_run(tree: ast.Module) -> list[int]:
    """Top-level statements that define things: imports, defs, classes, assignments, and
    try/if blocks (not ``if __name__ == "__main__"``). Scripts' side effects stay out."""
    keep = []
    defining = (
        ast.Import,
        ast.ImportFrom,
        ast.FunctionDef,
        ast.AsyncFunctionDef,
        ast.ClassDef,
        ast.Assign,
        ast.AnnAssign,
        ast.AugAssign,
        ast.Try,
    )
    for k, node in enumerate(tree.body):
        if (
            isinstance(node, defining)
            or (isinstance(node, ast.If) and not _is_main_guard(node))
            or type(node).__name__ in ("TypeAlias", "TryStar")
        ):
            keep.append(k)
    return keep


def _is_main_guard(node: ast.If) -> bool:
    return "__main__" in ast.unparse(node.test) and "__name__" in ast.unparse(node.test)


def _module_name(path: str | None) -> str:
    stem = Path(path).stem if path else ""
    if stem.isidentifier() and stem not in sys.modules and stem not in sys.stdlib_module_names:
        return stem
    return "__verify__"


def _child_sys_path(path: str | None) -> list[str]:
    # The host's own import path (stdlib, site-packages, editable installs), so a module's
    # third-party imports work although the child starts with -I -S; plus the file's folder.
    paths = [p for p in sys.path if p and os.path.isabs(p)]
    if path:
        paths.insert(0, os.path.dirname(os.path.abspath(path)))
    return list(dict.fromkeys(paths))


# --- processes --------------------------------------------------------------------------


class _Child:
    def __init__(self) -> None:
        self.tmp = tempfile.mkdtemp(prefix="phi-verify-")
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": self.tmp,
            "TMPDIR": self.tmp,
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            # Numeric libraries would start thread pools, which nproc=1 forbids.
            "OMP_NUM_THREADS": "1",
            "OPENBLAS_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-S", "-X", "frozen_modules=on", RUNNER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            cwd=self.tmp,
            env=env,
            start_new_session=True,
            close_fds=True,
        )
        self.buffer = b""
        self.ready = False
        self.child_pid = 0  # the monitor's child, in our PID namespace

    def kill(self) -> None:
        # The monitor reaps the sandboxed child if that dies first: kill it, give the
        # monitor a moment to report and exit, then kill whatever is left of the group.
        if self.child_pid:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(self.child_pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=1.0)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            self.proc.kill()
        with contextlib.suppress(Exception):
            self.proc.wait(timeout=5)
        for f in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(Exception):
                f.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


class _Pool:
    """At most ``size`` started-but-unused children; each child serves one run."""

    def __init__(self, size: int = 1) -> None:
        self.size = size
        self._spare: list[_Child] = []
        self._lock = threading.Lock()

    def _take(self) -> _Child:
        with self._lock:
            while self._spare:
                child = self._spare.pop()
                if child.proc.poll() is None:
                    return child
                child.kill()
        return _Child()

    def _refill(self) -> None:
        with self._lock:
            if len(self._spare) >= self.size:
                return
            with contextlib.suppress(OSError):
                self._spare.append(_Child())

    def close(self) -> None:
        with self._lock:
            spare, self._spare = self._spare, []
        for child in spare:
            child.kill()

    def run(
        self, job: dict, timeout_s: float, cancel: threading.Event | None
    ) -> tuple[list[dict], str]:
        """Events the child wrote, and how it ended: done|timeout|cancelled|eof|overflow."""
        child = self._take()
        try:
            return _drive(child, job, timeout_s, cancel)
        finally:
            child.kill()
            if self.size:
                self._refill()


def _drive(
    child: _Child, job: dict, timeout_s: float, cancel: threading.Event | None
) -> tuple[list[dict], str]:
    job = {**job, "tmp": child.tmp}
    events: list[dict] = []
    sel = selectors.DefaultSelector()
    out = child.proc.stdout
    assert out is not None and child.proc.stdin is not None
    os.set_blocking(out.fileno(), False)
    sel.register(out, selectors.EVENT_READ)
    total = 0
    try:
        # Wait for the interpreter to be up, then start the clock with the job.
        deadline = time.monotonic() + _READY_TIMEOUT_S
        started = False
        while True:
            if cancel is not None and cancel.is_set():
                return events, "cancelled"
            if not started and child.ready:
                child.proc.stdin.write(json.dumps(job).encode())
                child.proc.stdin.close()
                started = True
                deadline = time.monotonic() + timeout_s
            left = deadline - time.monotonic()
            if left <= 0:
                return events, "timeout" if started else "no-start"
            if not sel.select(timeout=min(left, 0.02)):
                continue
            chunk = out.read(65536)
            if not chunk:
                return events, "eof"
            total += len(chunk)
            if total > _RESULT_CAP:
                return events, "overflow"
            child.buffer += chunk
            *lines, child.buffer = child.buffer.split(b"\n")
            for raw in lines:
                try:
                    event = json.loads(raw)
                except ValueError:
                    continue
                if event.get("ready"):
                    child.ready = True
                    continue
                if "child" in event:
                    child.child_pid = int(event["child"])
                    continue
                events.append(event)
                if event.get("done"):
                    return events, "done"
    except (BrokenPipeError, OSError):
        return events, "eof"
    finally:
        sel.close()


# --- results -------------------------------------------------------------------------------


def _signal_name(n: int) -> str:
    try:
        return signal.Signals(n).name
    except ValueError:
        return f"signal {n}"


def _interpret(
    events: list[dict], ended: str, rows: list[dict], timeout_s: float, function: str
) -> VerifyResult:
    sandbox: dict = {}
    running: int | None = None
    load_error = ""
    crash: dict = {}
    for e in events:
        if "isolation" in e:
            sandbox = e["isolation"]
        elif e.get("load") == "error":
            load_error = e.get("error", "")
        elif "start" in e:
            running = e["start"]
        elif "i" in e and 0 <= e["i"] < len(rows):
            rows[e["i"]]["got"] = e.get("got")
            rows[e["i"]]["ok"] = e.get("ok") is True
            running = None
        elif "crash" in e:
            crash = e["crash"]
    ran = [r for r in rows if r["got"] is not None]
    passed = sum(1 for r in ran if r["ok"])
    failed = len(ran) - passed
    result = VerifyResult("passed", passed, failed, rows, sandbox=sandbox, function=function)
    where = ""
    if running is not None:
        where = f" while running line {rows[running]['line']}: {rows[running]['source']}"
    if load_error:
        result.status = "error"
        result.reason = f"the module failed to load: {load_error}"
        return result
    if ended == "done" and not crash:
        total = len(rows)
        if failed:
            bad = next(r for r in rows if not r["ok"])
            result.status = "failed"
            result.reason = (
                f"{failed} of {total} examples failed; first at line {bad['line']}: "
                f"{bad['source']} expected {str(bad['expected']).strip()} got {str(bad['got']).strip()}"
            )
        else:
            result.reason = f"all {total} examples passed"
        return result
    if running is not None:
        rows[running]["got"] = f"<{ended if ended in ('timeout', 'cancelled') else 'crashed'}>"
        result.failed += 1
    if ended == "timeout":
        result.status = "timeout"
        result.reason = f"the examples did not finish within {timeout_s:g} s{where}"
    elif ended == "cancelled":
        result.status = "error"
        result.reason = "cancelled"
    elif ended == "overflow":
        result.status = "error"
        result.reason = "the sandbox sent too much output; killed"
    elif ended == "no-start":
        result.status = "error"
        result.reason = f"the sandbox interpreter did not start within {_READY_TIMEOUT_S:g} s"
    elif crash.get("signal") == signal.SIGXCPU:
        result.status = "timeout"
        result.reason = (
            f"the CPU time limit ({sandbox.get('rlimits', {}).get('cpu_s')} s) ran out{where}"
        )
    elif "signal" in crash:
        result.status = "error"
        result.reason = f"the code crashed ({_signal_name(crash['signal'])}){where}"
    elif "exit" in crash:
        result.status = "error"
        result.reason = f"the process exited with code {crash['exit']} (os._exit?){where}"
    else:
        result.status = "error"
        result.reason = f"the sandbox ended unexpectedly{where}"
    return result


_POOL = _Pool(size=int(os.environ.get("PHI_LSP_VERIFY_POOL", "1")))
atexit.register(_POOL.close)  # the spare's temp dir goes with it


def shutdown_pool() -> None:
    """Kill the spare interpreter (tests, server shutdown). Later runs start new ones."""
    _POOL.close()
