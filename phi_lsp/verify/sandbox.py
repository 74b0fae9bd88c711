"""Run a function's examples in a sandbox, and decide them on this side.

Trust boundary (docs/contracts.md §3): this process believes nothing the sandbox says
beyond the strict shape of each message. It launches the runner (``_runner.py``) in the
project's interpreter inside bubblewrap (``isolation.py``: fresh read-only root, private
tmpfs ``/tmp``, own ``/proc``, no network or host socket, dies with us), or the runner's
own namespaces, or, where neither works, not isolated (reported as such). It writes the
job (with a fresh nonce) on the runner's stdin and reads JSON lines from its stdout:

- size caps per line and in total, checked before anything is parsed; a line must be a
  flat JSON object (no nesting: checked by a linear pattern first), exact keys and types,
  the nonce; results in order, one per example; a flood or garbage ends the run as
  ``error`` without growing this process;
- each example's raw ``out``/``exc``/``value`` is judged here (``compare.judge``); an
  example without its own result is an error, never a pass;
- it signals only what it started: its own child, through a pidfd (bubblewrap's PID
  namespace, or the runner whose child dies with it), never a pid it was told.

What isolation applied (``VerifyResult.sandbox``) is built here from what was launched,
plus the one message the runner's child sends before the module starts loading.

The limit, by design: the checked code runs in the process that reports its results, so
code that digs the nonce out of the runner's memory can claim outputs for its examples.
It still cannot change how they are judged, alter the isolation report,
signal anything outside, or reach the host.

A warm pool keeps one started runner per interpreter (and bind set), each used once.
Runners are started from one long-lived thread: their death-with-parent signal is tied
to the thread that started them.

The parts: ``_process.py`` starts and kills one runner, ``_channel.py`` reads and checks
its messages, ``_pool.py`` keeps the warm spares; this module builds the job and judges
the results.
"""

from __future__ import annotations

import atexit
import math
import os
import secrets
import signal
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from phi_lsp.verify import compare, isolation
from phi_lsp.verify._channel import LINE_CAP, TOTAL_CAP, ProtocolError, _Run, _Session, parse_line
from phi_lsp.verify._pool import _Pool
from phi_lsp.verify._process import _READY_TIMEOUT_S, RUNNER, _Child
from phi_lsp.verify.examples import Check
from phi_lsp.verify.project import Project

# Names other modules and the tests reach through ``sandbox``.
__all__ = [
    "LINE_CAP",
    "RUNNER",
    "TOTAL_CAP",
    "Limits",
    "ProtocolError",
    "VerifyResult",
    "_Child",
    "_Run",
    "_Session",
    "isolation_available",
    "isolation_summary",
    "parse_line",
    "run_checks",
    "shutdown_pool",
]

STATUSES = ("passed", "failed", "error", "timeout", "no-examples")
SCRIPT_MODULE = "__phi_verify__"
TMP_SIZE = 64 << 20  # bytes of the sandbox's private /tmp


@dataclass(frozen=True)
class Limits:
    """Resource limits of one run. ``cpu_s`` None: derived from the timeout."""

    cpu_s: int | None = None
    address_space_mb: int = 1024
    nproc: int = 64  # only where seccomp cannot refuse new processes (it counts threads)
    file_size_mb: int = 16
    open_files: int = 64
    tmp_mb: int = TMP_SIZE >> 20

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


def isolation_available() -> bool:
    """Whether examples run isolated on this machine (cached after the first call)."""
    return isolation.isolation_available()


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
    project: Project | None = None,
    python: str | None = None,
) -> VerifyResult:
    """Run ``checks`` against ``module_source`` (a whole module) in a fresh sandbox.

    ``line_offset`` turns a check's docstring-relative line into a file line
    (``line_offset + check.line``). ``project`` (``verify.project.Project``) gives the
    interpreter, import path, module name and doctest flags; without it, ``python`` (or
    this interpreter) and the file's folder on the import path. ``cancel`` kills the run.
    """
    t0 = time.perf_counter()
    limits = limits or Limits()
    if not checks:
        return VerifyResult("no-examples", reason="the docstring has no examples to run")
    python = (project.python if project is not None else None) or python or sys.executable
    try:
        return _run_checks(
            module_source, function_name, checks, timeout_s, line_offset, path, cancel, limits,
            project, python, t0,
        )  # fmt: skip
    except (OSError, isolation.IsolationError) as e:  # cannot fork, a broken interpreter, ...
        return VerifyResult("error", reason=f"could not start the sandbox: {e}")


def _run_checks(
    module_source: str,
    function_name: str,
    checks: Sequence[Check],
    timeout_s: float,
    line_offset: int,
    path: str | None,
    cancel: threading.Event | None,
    limits: Limits,
    project: Project | None,
    python: str,
    t0: float,
) -> VerifyResult:
    if project is not None:
        sys_path = [p for p in project.sys_path if p]
        module_name, package = project.module_name, project.package
        flags: Sequence[str] = tuple(project.optionflags)
        readable = [p for p in (project.root, project.package_root) if p]
    else:
        sys_path = _default_sys_path(path, python)
        module_name, package, flags = _module_name(path), "", compare.PYTEST_DEFAULT_FLAGS
        readable = []
    if path:
        readable.append(os.path.dirname(os.path.abspath(path)))
    readable += [p for p in sys_path if os.path.isabs(p)]
    readable += isolation.editable_roots(sys_path)
    job = {
        "nonce": secrets.token_hex(16),
        "sys_path": sys_path,
        "module_name": module_name,
        "package": package,
        "path": os.path.abspath(path) if path else None,
        "source": module_source,
        "function": function_name,
        "examples": [c.wire() for c in checks],
        "limits": limits.for_timeout(timeout_s),
        "timeout_s": timeout_s,
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
    run = _POOL.run(python, tuple(readable), limits.tmp_mb, job, timeout_s, cancel)
    result = _interpret(run, checks, rows, flags, timeout_s, function_name)
    result.elapsed_ms = round((time.perf_counter() - t0) * 1000, 1)
    return result


def isolation_summary(sandbox: dict, timeout_s: float) -> dict:
    """The ``sandbox`` JSON object of ``phi-lsp verify --json``."""
    return {
        "process": "killed through a pidfd on timeout; nothing outlives the verifier",
        "environment": "scrubbed (PATH, HOME=/tmp, LANG only)",
        "timeout_s": timeout_s,
        **sandbox,
    }


def _module_name(path: str | None) -> str:
    stem = Path(path).stem if path else ""
    if stem.isidentifier() and stem not in sys.stdlib_module_names:
        return stem
    return SCRIPT_MODULE


def _default_sys_path(path: str | None, python: str) -> list[str]:
    # No project: the interpreter's import path (stdlib, site-packages) plus the file's
    # folder, as before issue 12's project discovery.
    if os.path.realpath(python) == os.path.realpath(sys.executable):
        paths = [p for p in sys.path if p and os.path.isabs(p)]
    else:
        paths = list(isolation.interpreter(python).sys_path)
    if path:
        paths.insert(0, os.path.dirname(os.path.abspath(path)))
    return list(dict.fromkeys(paths))


# --- results -------------------------------------------------------------------------------------


def _signal_name(n: int) -> str:
    try:
        return signal.Signals(n).name
    except ValueError:
        return f"signal {n}"


def _report(run: _Run, limits: dict) -> dict:
    """What isolation applied, from what we launched and the pre-load report."""
    iso = run.isolation or {}
    known = run.isolation is not None
    rep: dict[str, Any] = {"interpreter": run.python}
    if run.mode == "bwrap":
        rep.update(
            isolated=True,
            launcher="bubblewrap",
            filesystem="fresh read-only root (interpreter, import path, project); writable "
            "private /tmp",
            network="none (own network namespace); host sockets unreachable",
            tmp=f"private tmpfs, {TMP_SIZE >> 20} MiB, gone with the sandbox",
            proc="own (PID namespace)",
        )
    elif run.mode == "ns":
        rep.update(
            isolated=True,
            launcher="own namespaces (no working bubblewrap)",
            filesystem="host filesystem read-only; writable private /tmp",
            network="none (own network namespace)",
            tmp=f"private tmpfs, {TMP_SIZE >> 20} MiB, gone with the sandbox",
            proc={"own": "own (PID namespace)", "hidden": "hidden", "host": "the host's"}.get(
                iso.get("proc", ""), "unknown"
            ),
        )
    else:
        rep.update(
            isolated=False,
            launcher="not isolated (no bubblewrap, no namespaces)",
            filesystem=(
                "writes only in a temp dir (Landlock)"
                if iso.get("landlock")
                else ("not restricted" if known else "unknown")
            ),
            network="socket creation refused (seccomp)" if iso.get("seccomp") else "the host's",
            tmp="a host temp dir, removed after",
            proc="the host's",
        )
    rep["processes"] = (
        "no new processes or programs, no foreign ABI (seccomp); threads allowed"
        if iso.get("seccomp")
        else ("not restricted" if known else "unknown")
    )
    rep["capabilities"] = "dropped" if iso.get("capabilities") else "kept"
    if iso.get("seccomp"):
        limits = {k: v for k, v in limits.items() if k != "nproc"}  # seccomp does that
    rep["rlimits"] = limits if iso.get("rlimits") else ("partly refused" if known else "unknown")
    return rep


def _interpret(
    run: _Run,
    checks: Sequence[Check],
    rows: list[dict],
    flags: Sequence[str],
    timeout_s: float,
    function: str,
) -> VerifyResult:
    sandbox = _report(run, run.limits)
    for k, raw in enumerate(run.results):
        ok, got = compare.judge(checks[k], raw, flags)
        rows[k]["ok"], rows[k]["got"] = bool(ok), got
    passed = sum(1 for r in rows if r["ok"])
    failed = len(run.results) - passed
    result = VerifyResult("passed", passed, failed, rows, sandbox=sandbox, function=function)
    running = len(run.results) if run.loaded and len(run.results) < len(rows) else None
    where = ""
    if running is not None:
        where = f" while running line {rows[running]['line']}: {rows[running]['source']}"
    exit_ = run.exit or {}
    if run.load_error is not None and run.ended in ("done", "crash"):
        result.status = "error"
        result.reason = f"the module failed to load: {run.load_error}"
        return result
    if run.ended == "done" and exit_ == {"exit": 0}:
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
        mark = run.ended if run.ended in ("timeout", "cancelled") else "crashed"
        rows[running]["got"] = f"<{mark}>"
        result.failed += 1
    result.status = "error"
    if run.ended == "timeout":
        result.status = "timeout"
        result.reason = f"the examples did not finish within {timeout_s:g} s{where}"
    elif run.ended == "cancelled":
        result.reason = "cancelled"
    elif run.ended in ("overflow", "violation"):
        result.reason = f"the sandbox broke the protocol ({run.problem}); killed{where}"
    elif run.ended == "no-start":
        if run.ns_failed:
            result.reason = "the sandbox could not set up its namespaces"
        elif run.start_error:
            result.reason = f"the sandbox did not start ({run.mode}): {run.start_error}"
        else:
            result.reason = f"the sandbox interpreter did not start within {_READY_TIMEOUT_S:g} s"
    elif exit_.get("signal") == signal.SIGXCPU:
        result.status = "timeout"
        result.reason = f"the CPU time limit ran out{where}"
    elif exit_.get("signal") == signal.SIGSYS:
        result.reason = f"the code made a forbidden system call and was killed (SIGSYS){where}"
    elif "signal" in exit_:
        result.reason = f"the code crashed ({_signal_name(exit_['signal'])}){where}"
    elif exit_.get("exit"):
        result.reason = f"the process exited with code {exit_['exit']} (os._exit?){where}"
    elif run.ended == "done":
        result.reason = f"the sandbox ended without reporting how{where}"
    else:
        result.reason = f"the sandbox ended unexpectedly{where}"
    return result


_POOL = _Pool(size=int(os.environ.get("PHI_LSP_VERIFY_POOL", "1")))
atexit.register(_POOL.close)


def shutdown_pool() -> None:
    """Kill the spare runners (tests, server shutdown). Later runs start new ones."""
    _POOL.close()
