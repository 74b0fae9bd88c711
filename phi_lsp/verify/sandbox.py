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
"""

from __future__ import annotations

import atexit
import concurrent.futures
import contextlib
import json
import math
import os
import queue
import re
import secrets
import select
import selectors
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from phi_lsp.verify import compare, isolation
from phi_lsp.verify.examples import Check

RUNNER = str(Path(__file__).with_name("_runner.py"))
STATUSES = ("passed", "failed", "error", "timeout", "no-examples")
SCRIPT_MODULE = "__phi_verify__"
_READY_TIMEOUT_S = 20.0  # interpreter start-up on a loaded machine
_EXIT_GRACE_S = 2.0  # after "done": time for the runner to report the child's exit
LINE_CAP = 10 << 20  # bytes of one message (3 fields of 256 Ki characters, \u-escaped)
TOTAL_CAP = 40 << 20  # bytes read from one run
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
    project: Any = None,
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
    project: Any,
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
    run = _POOL.run(python, tuple(readable), limits, job, timeout_s, cancel)
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


# --- processes ---------------------------------------------------------------------------------


class _Spawner:
    """One long-lived thread starts every runner: PR_SET_PDEATHSIG (bubblewrap's
    --die-with-parent, the runner's own) fires when the *thread* that forked it ends, so
    a runner started from a short-lived worker thread would die with that thread."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, fn, *args) -> concurrent.futures.Future:
        fut: concurrent.futures.Future = concurrent.futures.Future()
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._loop, name="phi-verify-spawner", daemon=True
                )
                self._thread.start()
        self._jobs.put((fut, fn, args))
        return fut

    def _loop(self) -> None:
        while True:
            fut, fn, args = self._jobs.get()
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                fut.set_result(fn(*args))
            except BaseException as e:  # noqa: BLE001 - handed to the waiting caller
                fut.set_exception(e)


_SPAWNER = _Spawner()


class _Child:
    """One runner process we started, and what it was started with."""

    def __init__(self, python: str, readable: tuple[str, ...], tmp_mb: int) -> None:
        self.python, self.readable, self.tmp_mb = python, readable, tmp_mb
        self.mode = isolation.mode()
        self.host_tmp: str | None = None
        size = tmp_mb << 20
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
        env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
        runner = [python, "-I", "-S", "-X", "frozen_modules=on", RUNNER]
        if isolation.interpreter(python).version < (3, 11):
            runner.remove("-X")
            runner.remove("frozen_modules=on")
        pass_fds: tuple[int, ...] = ()
        info_r = info_w = -1
        if self.mode == "bwrap":
            bwrap = isolation.bwrap_path() or "bwrap"
            info_r, info_w = os.pipe()
            argv = isolation.bwrap_argv(
                bwrap,
                isolation.interpreter(python),
                list(readable),
                size,
                [*runner, "bwrap", "/tmp", str(os.getpid()), str(size)],
            )
            argv[1:1] = ["--info-fd", str(info_w)]
            pass_fds, cwd = (info_w,), "/"
        else:
            if self.mode == "none":
                _sweep_orphaned_temp_dirs()
                self.host_tmp = tempfile.mkdtemp(prefix=f"phi-verify-{os.getpid()}-")
                tmp = self.host_tmp
                env.update(HOME=tmp, TMPDIR=tmp)
            else:
                tmp = "/tmp"
                env.update(HOME="/tmp")
            argv = [*runner, self.mode, tmp, str(os.getpid()), str(size)]
            if self.mode == "ns":  # folders its private /tmp, /run would hide
                argv += [os.path.abspath(p) for p in readable if os.path.isabs(p)]
            cwd = self.host_tmp or "/"
        try:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,  # read only if it dies before ready (why)
                cwd=cwd,
                env=env,
                start_new_session=True,
                close_fds=True,
                pass_fds=pass_fds,
            )
        except BaseException:
            if info_r >= 0:
                os.close(info_r)
            if self.host_tmp:
                _remove_tree(self.host_tmp)
            raise
        finally:
            if info_w >= 0:
                os.close(info_w)
        # Our own child, not yet waited for: its pid cannot be reused while we hold it.
        self.pidfd = os.pidfd_open(self.proc.pid) if hasattr(os, "pidfd_open") else -1
        # bubblewrap's PID 1 inside (bubblewrap told us, before anything untrusted ran):
        # killing it ends the whole PID namespace, and its pidfd says when that is done.
        self.init_pidfd = -1
        if info_r >= 0:
            try:
                self.init_pidfd = _bwrap_init(info_r, self.proc.pid)
            finally:
                os.close(info_r)
        self.buffer = bytearray()
        self.ready: dict | None = None

    def start_error(self) -> str:
        """The last line the launcher wrote before dying (bubblewrap says why), if any."""
        err = self.proc.stderr
        if err is None or self.alive():
            return ""
        try:
            os.set_blocking(err.fileno(), False)
            text = (os.read(err.fileno(), 4096) or b"").decode("utf-8", "replace")
        except OSError:
            return ""
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        return lines[-1][:300] if lines else ""

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        if self.init_pidfd >= 0:
            with contextlib.suppress(OSError):
                signal.pidfd_send_signal(self.init_pidfd, signal.SIGKILL)
                # Readable once it has exited: a namespace's init exits last.
                select.select([self.init_pidfd], [], [], 5.0)
            with contextlib.suppress(OSError):
                os.close(self.init_pidfd)
            self.init_pidfd = -1
        if self.mode != "bwrap" and self.proc.returncode is None:
            # Not reaped yet, so its pid is still its group's: the runner and the child it
            # forked (which cannot leave the group: seccomp) go together, not one after
            # the other through PDEATHSIG.
            with contextlib.suppress(OSError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        if self.pidfd >= 0:
            with contextlib.suppress(OSError):
                signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
        else:  # no pidfds (not Linux): our own Popen, not yet reaped, is still ours
            with contextlib.suppress(OSError):
                self.proc.kill()
        with contextlib.suppress(Exception):
            self.proc.wait(timeout=5)
        if self.pidfd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.pidfd)
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if f is not None:
                with contextlib.suppress(Exception):
                    f.close()
        if self.host_tmp:
            _remove_tree(self.host_tmp)


def _bwrap_init(info_fd: int, parent: int) -> int:
    """A pidfd of bubblewrap's PID 1 from its ``--info-fd`` JSON (``{"child-pid": N}``);
    -1 if it did not say in time. That process is bubblewrap's child, alive and not yet
    reaped (it waits for our job), so the pid names it."""
    data = b""
    deadline = time.monotonic() + _READY_TIMEOUT_S
    while time.monotonic() < deadline and len(data) < 4096:
        ready, _, _ = select.select([info_fd], [], [], 0.05)
        if not ready:
            continue
        chunk = os.read(info_fd, 4096)
        if not chunk:
            break
        data += chunk
        try:
            pid = json.loads(data)["child-pid"]
        except (ValueError, KeyError, TypeError):
            continue
        if type(pid) is int and pid > 1:
            return _pidfd_of_child(pid, parent)
        break
    return -1


def _pidfd_of_child(pid: int, parent: int) -> int:
    """A pidfd for ``pid`` only if it is ``parent``'s child: open it, check the parent of
    what /proc shows under that pid, then check that the pidfd's process still lives (so
    /proc showed that very process, not a later one with the same pid)."""
    try:
        fd = os.pidfd_open(pid)
    except OSError:
        return -1
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent:
            signal.pidfd_send_signal(fd, 0)
            return fd
    except (OSError, ValueError, IndexError):
        pass
    os.close(fd)
    return -1


_swept = False


def _sweep_orphaned_temp_dirs() -> None:
    """Not isolated, the runner works in a host temp dir; a verifier that was SIGKILLed
    could not remove its own. The next one does, once: ``phi-verify-<pid>-*`` of ours
    whose pid is gone."""
    global _swept
    if _swept:
        return
    _swept = True
    base = tempfile.gettempdir()
    with contextlib.suppress(OSError):
        for name in os.listdir(base):
            parts = name.split("-")
            if len(parts) < 4 or parts[:2] != ["phi", "verify"] or not parts[2].isdigit():
                continue
            path = os.path.join(base, name)
            with contextlib.suppress(OSError):
                if os.lstat(path).st_uid != os.getuid() or os.path.exists(f"/proc/{parts[2]}"):
                    continue
                _remove_tree(path)


def _remove_tree(path: str) -> None:
    """Remove a directory tree of any depth (no recursion, one open directory at a time):
    a chain deeper than PATH_MAX or than Python's recursion limit goes too."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
    try:
        fd = os.open(path, flags)
    except OSError:
        return
    names: list[str] = []
    try:
        while True:
            sub = None
            with contextlib.suppress(OSError), os.scandir(fd) as it:
                for entry in it:
                    if entry.is_dir(follow_symlinks=False):
                        sub = entry.name
                        break
                    with contextlib.suppress(OSError):
                        os.unlink(entry.name, dir_fd=fd)
            if sub is not None:
                with contextlib.suppress(OSError):
                    os.chmod(sub, 0o700, dir_fd=fd, follow_symlinks=False)
                try:
                    new = os.open(sub, flags, dir_fd=fd)
                except OSError:
                    # Cannot enter it: try removing it as it is, then give up on it.
                    with contextlib.suppress(OSError):
                        os.rmdir(sub, dir_fd=fd)
                    if os.path.isdir(f"/proc/self/fd/{fd}/{sub}"):
                        return
                    continue
                os.close(fd)
                fd = new
                names.append(sub)
                continue
            if not names:
                break
            parent = os.open("..", flags, dir_fd=fd)
            os.close(fd)
            fd = parent
            with contextlib.suppress(OSError):
                os.rmdir(names.pop(), dir_fd=fd)
    finally:
        os.close(fd)
    with contextlib.suppress(OSError):
        os.rmdir(path)


class _Pool:
    """One started-but-unused runner per interpreter; each runner serves one run."""

    def __init__(self, size: int = 1) -> None:
        self.size = size
        self._spare: dict[str, _Child] = {}
        self._pending: dict[str, concurrent.futures.Future] = {}
        self._lock = threading.Lock()

    def _take(self, python: str, readable: tuple[str, ...], tmp_mb: int) -> _Child:
        # No waiting for a spare still being started: starting another in parallel is
        # faster back to back (the one in flight serves the next run).
        with self._lock:
            child = self._spare.pop(python, None)
        if child is not None:
            same = (child.readable, child.tmp_mb, child.mode) == (
                readable,
                tmp_mb,
                isolation.mode(),
            )
            if same and child.alive():
                return child
            child.kill()
        return _SPAWNER.submit(_Child, python, readable, tmp_mb).result()

    def _refill(self, python: str, readable: tuple[str, ...], tmp_mb: int) -> None:
        def make() -> None:
            try:
                with self._lock:
                    if python in self._spare or not self.size:
                        return
                try:
                    child = _Child(python, readable, tmp_mb)
                except (OSError, isolation.IsolationError):
                    return
                with self._lock:
                    if python not in self._spare and self.size:
                        self._spare[python] = child
                        return
                child.kill()
            finally:
                with self._lock:
                    if self._pending.get(python) is fut:
                        del self._pending[python]

        with self._lock:
            if python in self._pending:
                return
            fut = _SPAWNER.submit(make)
            self._pending[python] = fut

    def close(self) -> None:
        with self._lock:
            pending = list(self._pending.values())
        for fut in pending:  # a spare still being started would outlive the close
            with contextlib.suppress(Exception):
                fut.result(timeout=_READY_TIMEOUT_S)
        with self._lock:
            spare, self._spare = list(self._spare.values()), {}
        for child in spare:
            child.kill()

    def run(
        self,
        python: str,
        readable: tuple[str, ...],
        limits: Limits,
        job: dict,
        timeout_s: float,
        cancel: threading.Event | None,
    ) -> _Run:
        child = self._take(python, readable, limits.tmp_mb)
        try:
            return _drive(child, job, timeout_s, cancel)
        finally:
            if self.size:  # the next spare starts while this one is killed
                self._refill(python, readable, limits.tmp_mb)
            child.kill()


# --- the channel -------------------------------------------------------------------------------

# A flat JSON object: string keys; string, integer, true/false/null values. Linear, no
# nesting: checked before json.loads ever sees the line.
_STR = r'"(?:[^"\\\x00-\x1f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*"'
_VALUE = rf"(?:{_STR}|-?\d{{1,19}}|true|false|null)"
_FLAT = re.compile(rf"\{{\s*(?:{_STR}\s*:\s*{_VALUE}\s*(?:,\s*{_STR}\s*:\s*{_VALUE}\s*)*)?\}}")
_PROC = ("own", "hidden", "host")
_SCHEMAS: dict[str, dict[str, tuple]] = {
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
