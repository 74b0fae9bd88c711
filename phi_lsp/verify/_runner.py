"""The sandbox child: started by ``sandbox.py`` as ``python -I -S _runner.py``.

Trusted code that runs first, then untrusted code. Protocol: it imports what it needs,
writes ``{"ready": true}`` to stdout (so a warm pool can wait on it), reads one JSON job
from stdin, isolates itself, runs the module and the checks, and writes one JSON line
per event to the result fd (its stdout, moved out of the way of user code):
``{"isolation": {...}}``, ``{"load": "ok"|"error", ...}``, ``{"i": n, "ok", "got"}``,
``{"done": true}``; the monitoring parent adds ``{"crash": {...}}`` if the child dies.

Layers, each applied where the OS allows it and reported in ``isolation``:
mount + network + PID namespaces (the file system read-only except the temp dir, no
network interface, every process killed when the run ends), all capabilities dropped
and no_new_privs, rlimits, and an audit hook that refuses writes outside the temp dir,
running programs, and (without a network namespace) sockets.
"""

import ast
import builtins
import contextlib
import doctest
import io
import json
import os
import resource
import sys
import traceback

_write = os.write
_encode_str = json.encoder.encode_basestring_ascii
_isinstance = isinstance
_repr = repr
_str = str
_len = len
_BaseException = BaseException
_builtins_snapshot = dict(builtins.__dict__)
_builtins_clear = builtins.__dict__.clear
_builtins_update = builtins.__dict__.update
_displayhook = sys.__displayhook__
_setrecursionlimit = sys.setrecursionlimit
_recursionlimit = sys.getrecursionlimit()
_checker = doctest.OutputChecker()
_flags_by_name = dict(doctest.OPTIONFLAGS_BY_NAME)
_strip_details = doctest._strip_exception_details
_GOT_CAP = 4000  # characters of output kept per example
_OUT_CAP = 1 << 20  # characters of output captured per example (the rest is counted)

RESULT_FD = 1


def _enc(obj: object) -> str:
    # Our own tiny JSON encoder over captured C functions: user code may have patched
    # json, builtins or str by the time results are written.
    if obj is None:
        return "null"
    if obj is True:
        return "true"
    if obj is False:
        return "false"
    if _isinstance(obj, int):
        return int.__repr__(obj)
    if _isinstance(obj, float):
        return float.__repr__(obj)
    if _isinstance(obj, str):
        return _encode_str(obj)
    if _isinstance(obj, dict):
        return "{" + ", ".join(_encode_str(k) + ": " + _enc(v) for k, v in obj.items()) + "}"
    if _isinstance(obj, (list, tuple)):
        return "[" + ", ".join(_enc(v) for v in obj) + "]"
    return _encode_str(object.__repr__(obj))


def emit(obj: dict) -> None:
    data = (_enc(obj) + "\n").encode()
    while data:
        n = _write(RESULT_FD, data)
        data = data[n:]


class _Capture(io.TextIOBase):
    """stdout for one example: keeps the first _OUT_CAP characters, counts the rest."""

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._size = 0
        self.dropped = 0

    def write(self, s: str) -> int:
        s = _str(s)
        room = _OUT_CAP - self._size
        if room > 0:
            self._parts.append(s[:room])
            self._size += min(_len(s), room)
        self.dropped += max(0, _len(s) - max(room, 0))
        return _len(s)

    def writable(self) -> bool:
        return True

    def getvalue(self) -> str:
        return "".join(self._parts)


def _restore() -> None:
    """Undo what an example may have done to the interpreter we compare in."""
    _builtins_clear()
    _builtins_update(_builtins_snapshot)
    sys.displayhook = _displayhook
    _setrecursionlimit(_recursionlimit)


def _short(text: str) -> str:
    if _len(text) > _GOT_CAP:
        return text[:_GOT_CAP] + f"... [{_len(text) - _GOT_CAP} more characters]"
    return text


def _exc_line(exc: BaseException) -> str:
    try:
        return traceback.format_exception_only(type(exc), exc)[-1]
    except _BaseException:
        return type(exc).__name__ + "\n"


# --- isolation ---------------------------------------------------------------------------


def _namespaces(tmp: str) -> dict:
    """Mount (read-only but tmp), network and PID namespaces; caps dropped. {} if refused."""
    try:
        import ctypes
    except ImportError:
        return {}
    libc = ctypes.CDLL(None, use_errno=True)
    clone_newns, clone_newnet, clone_newpid, clone_newuser = (
        0x20000,
        0x40000000,
        0x20000000,
        0x10000000,
    )
    flags = clone_newns | clone_newnet | clone_newpid
    done: dict = {}
    uid, gid = os.getuid(), os.getgid()
    if libc.unshare(flags) != 0:
        # Not root: a user namespace makes the others possible where the OS allows it.
        if libc.unshare(flags | clone_newuser) != 0:
            return {}
        try:
            with open("/proc/self/setgroups", "w") as f:
                f.write("deny")
            with open("/proc/self/uid_map", "w") as f:
                f.write(f"{uid} {uid} 1")
            with open("/proc/self/gid_map", "w") as f:
                f.write(f"{gid} {gid} 1")
        except OSError:
            pass
        done["user_namespace"] = True
    done["network"] = "namespace"
    done["pid_namespace"] = True
    ms_rec, ms_private, ms_bind = 16384, 1 << 18, 4096
    if libc.mount(None, b"/", None, ms_rec | ms_private, None) == 0 and (
        libc.mount(tmp.encode(), tmp.encode(), None, ms_bind, None) == 0
    ):

        class MountAttr(ctypes.Structure):
            _fields_ = [
                ("attr_set", ctypes.c_uint64),
                ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64),
                ("userns_fd", ctypes.c_uint64),
            ]

        sys_mount_setattr, at_fdcwd, at_recursive, mount_attr_rdonly = 442, -100, 0x8000, 1
        libc.syscall.restype = ctypes.c_long
        ro = MountAttr(mount_attr_rdonly, 0, 0, 0)
        rw = MountAttr(0, mount_attr_rdonly, 0, 0)
        size = ctypes.sizeof(MountAttr)
        if (
            libc.syscall(sys_mount_setattr, at_fdcwd, b"/", at_recursive, ctypes.byref(ro), size)
            == 0
            and libc.syscall(sys_mount_setattr, at_fdcwd, tmp.encode(), 0, ctypes.byref(rw), size)
            == 0
        ):
            done["filesystem"] = "read-only mounts except the temp dir"
    return done


def _drop_privileges() -> bool:
    """All capabilities gone (root keeps its uid but not its powers) and no_new_privs."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("eff", ctypes.c_uint32), ("perm", ctypes.c_uint32), ("inh", ctypes.c_uint32)]

    pr_capbset_drop, pr_set_no_new_privs = 24, 38
    for cap in range(64):
        libc.prctl(pr_capbset_drop, cap, 0, 0, 0)
    libc.prctl(pr_set_no_new_privs, 1, 0, 0, 0)
    header, data = Header(0x20080522, 0), (Data * 2)()
    return libc.capset(ctypes.byref(header), data) == 0


def _no_new_processes() -> bool:
    """A seccomp filter: fork/vfork/clone of a process and execve fail (EAGAIN / EPERM);
    threads stay allowed. RLIMIT_NPROC alone does not bind root, hence this."""
    import ctypes
    import platform

    if platform.machine() != "x86_64":
        return False
    ld, jeq, jset, ret = 0x20, 0x15, 0x45, 0x06
    allow, errno = 0x7FFF0000, 0x00050000
    fork, vfork, clone, clone3, execve, execveat = 57, 58, 56, 435, 59, 322
    # (code, jump-if-true label, jump-if-false label, k); labels resolved below.
    prog = [
        (ld, None, None, 4),  # arch
        (jeq, "check", "allow", 0xC000003E),  # AUDIT_ARCH_X86_64
        ("check", ld, None, None, 0),  # syscall number
        (jeq, "again", None, fork),
        (jeq, "again", None, vfork),
        (jeq, "nosys", None, clone3),  # glibc then falls back to clone for threads
        (jeq, "perm", None, execve),
        (jeq, "perm", None, execveat),
        (jeq, "clone", "allow", clone),
        ("clone", ld, None, None, 16),  # args[0], low 32 bits: the clone flags
        (jset, "allow", "again", 0x10000),  # CLONE_THREAD
        ("again", ret, None, None, errno | 11),
        ("nosys", ret, None, None, errno | 38),
        ("perm", ret, None, None, errno | 1),
        ("allow", ret, None, None, allow),
    ]
    rows = [r if isinstance(r[0], str) else (None, *r) for r in prog]
    labels = {r[0]: k for k, r in enumerate(rows) if r[0]}

    class SockFilter(ctypes.Structure):
        _fields_ = [
            ("code", ctypes.c_uint16),
            ("jt", ctypes.c_uint8),
            ("jf", ctypes.c_uint8),
            ("k", ctypes.c_uint32),
        ]

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(SockFilter))]

    filters = (SockFilter * len(rows))()
    for k, (_, code, jt, jf, value) in enumerate(rows):
        filters[k] = SockFilter(
            code,
            labels[jt] - k - 1 if jt else 0,
            labels[jf] - k - 1 if jf else 0,
            value,
        )
    fprog = SockFprog(len(rows), filters)
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_no_new_privs, pr_set_seccomp, seccomp_mode_filter = 38, 22, 2
    libc.prctl(pr_set_no_new_privs, 1, 0, 0, 0)
    return libc.prctl(pr_set_seccomp, seccomp_mode_filter, ctypes.byref(fprog), 0, 0) == 0


def _rlimits(limits: dict) -> dict:
    applied = {}
    table = {
        "cpu_s": (resource.RLIMIT_CPU, 1),
        "address_space_mb": (resource.RLIMIT_AS, 1 << 20),
        "nproc": (resource.RLIMIT_NPROC, 1),
        "file_size_mb": (resource.RLIMIT_FSIZE, 1 << 20),
        "open_files": (resource.RLIMIT_NOFILE, 1),
        "core": (resource.RLIMIT_CORE, 1),
    }
    for key, (which, unit) in table.items():
        if key not in limits:
            continue
        value = int(limits[key] * unit)
        try:
            soft, hard = resource.getrlimit(which)
            if hard != resource.RLIM_INFINITY:
                value = min(value, hard)
            resource.setrlimit(which, (value, value))
            applied[key] = limits[key]
        except (ValueError, OSError):
            applied[key] = "refused"
    return applied


def _install_audit_hook(tmp: str, block_sockets: bool, block_ctypes: bool) -> None:
    import socket

    tmp_prefix = os.path.realpath(tmp) + os.sep
    realpath, fspath, isinstance_ = os.path.realpath, os.fspath, isinstance
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
    path_events = {
        "os.remove": 1,
        "os.rmdir": 1,
        "os.rename": 2,
        "os.mkdir": 1,
        "os.chmod": 1,
        "os.chown": 1,
        "os.truncate": 1,
        "os.link": 2,
        "os.symlink": 2,
        "os.utime": 1,
        "shutil.rmtree": 1,
        "os.setxattr": 1,
        "os.removexattr": 1,
    }
    refused = {
        "os.system",
        "os.exec",
        "os.posix_spawn",
        "os.spawn",
        "subprocess.Popen",
        "os.startfile",
        "pty.spawn",
    }
    af_unix = socket.AF_UNIX

    def inside(path: object) -> bool:
        if isinstance_(path, int):
            return True  # an fd already opened
        try:
            p = realpath(fspath(path))
        except (TypeError, ValueError):
            return False
        if isinstance_(p, bytes):
            p = p.decode("utf-8", "surrogateescape")
        return p == "/dev/null" or (p + os.sep).startswith(tmp_prefix)

    def hook(event: str, args: tuple) -> None:
        if event == "open":
            path, mode, flags = args
            writing = (mode is not None and any(c in mode for c in "wax+")) or (
                isinstance_(flags, int) and flags & write_flags
            )
            if writing and not inside(path):
                raise PermissionError(f"sandbox: writing outside the temp dir refused: {path!r}")
        elif event in path_events:
            for path in args[: path_events[event]]:
                if not inside(path):
                    raise PermissionError(f"sandbox: {event} outside the temp dir refused")
        elif event in refused:
            raise PermissionError(f"sandbox: running programs is refused ({event})")
        elif event == "socket.__new__" and block_sockets and args[1] != af_unix:
            raise PermissionError("sandbox: network access is refused")
        elif event == "import" and block_ctypes and args[0] in ("ctypes", "_ctypes"):
            raise PermissionError("sandbox: ctypes is refused")

    sys.addaudithook(hook)


# --- running --------------------------------------------------------------------------------


def _load(job: dict) -> dict:
    import types

    name = job["module_name"]
    module = types.ModuleType(name)
    module.__file__ = job.get("path") or f"<{name}>"
    sys.modules[name] = module
    tree = ast.parse(job["module"], filename=module.__file__)
    keep = set(job["keep"])
    tree.body = [node for k, node in enumerate(tree.body) if k in keep]
    code = compile(tree, module.__file__, "exec", dont_inherit=True)
    exec(code, module.__dict__)
    return module.__dict__


def _run_doctest(check: dict, globs: dict, filename: str) -> tuple[bool, str]:
    flags = 0
    for name, on in check.get("options", {}).items():
        flag = _flags_by_name.get(name, 0)
        flags = flags | flag if on else flags & ~flag
    if flags & doctest.SKIP:
        return True, "(skipped by directive)"
    out = _Capture()
    exception = None
    sys.stdout = out
    try:
        exec(compile(check["source"], filename, "single", dont_inherit=True), globs)
    except KeyboardInterrupt:
        raise
    except _BaseException as e:
        exception = e
    finally:
        sys.stdout = sys.__stdout__
        _restore()
    got = out.getvalue()
    if out.dropped:
        got += f"... [{out.dropped} more characters]"
    want, exc_msg = check["expected"], check.get("exc_msg")
    if exception is None:
        ok = _checker.check_output(want, got, flags) or _same_literal(want, got)
        return ok, got
    line = _exc_line(exception)
    if exc_msg is None:
        return False, got + line
    ok = _checker.check_output(exc_msg, line, flags)
    if not ok and flags & doctest.IGNORE_EXCEPTION_DETAIL:
        ok = _checker.check_output(_strip_details(exc_msg), _strip_details(line), flags)
    return ok, got + line


def _same_literal(want: str, got: str) -> bool:
    """``"21"`` written for ``'21'``: the same Python value, quoted differently. Doctest
    would fail it; the author's intent is clear, and a false alarm hides a good body."""
    try:
        a, b = ast.literal_eval(want.strip()), ast.literal_eval(got.strip())
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False
    return type(a) is type(b) and a == b


def _close(got: object, expected: object, digits: int | None) -> bool:
    """``got == expected``, with a float written to n decimals matching its rounding or
    truncation to n decimals (docstrings show floats as people print them)."""
    if type(expected) is float and type(got) in (float, int) and digits is not None:
        if got == expected:
            return True
        scale = 10.0**digits
        rounded = round(got, digits)
        truncated = int(got * scale + (1e-9 if got >= 0 else -1e-9)) / scale
        return abs(rounded - expected) < 1e-9 or abs(truncated - expected) < 1e-9
    if type(expected) in (list, tuple) and type(got) is type(expected):
        return _len(got) == _len(expected) and all(
            _close(g, e, digits) for g, e in zip(got, expected, strict=True)
        )
    if type(expected) is dict and type(got) is dict:
        return got.keys() == expected.keys() and all(
            _close(got[k], v, digits) for k, v in expected.items()
        )
    return bool(got == expected)


def _decimals(src: str) -> int | None:
    """Decimals written in the expected literal's floats (the fewest, if several)."""
    found = []
    for node in ast.walk(ast.parse(src, mode="eval")):
        if isinstance(node, ast.Constant) and type(node.value) is float:
            text = ast.get_source_segment(src, node) or ""
            if "." in text and "e" not in text.lower():
                found.append(_len(text.split(".", 1)[1]))
    return min(found) if found else None


def _run_call(check: dict, globs: dict, filename: str) -> tuple[bool, str]:
    expected = ast.literal_eval(check["expected"])
    digits = _decimals(check["expected"])
    out = _Capture()
    sys.stdout = out
    try:
        value = eval(compile(check["source"], filename, "eval", dont_inherit=True), globs)
    except KeyboardInterrupt:
        raise
    except _BaseException as e:
        sys.stdout = sys.__stdout__
        _restore()
        return False, _exc_line(e).rstrip("\n")
    try:
        ok = _close(value, expected, digits)
        try:
            got = _repr(value)
        except _BaseException as e:
            got = f"<repr failed: {_exc_line(e).strip()}>"
    except _BaseException as e:
        ok, got = False, f"comparing raised {_exc_line(e).strip()}"
    finally:
        sys.stdout = sys.__stdout__
        _restore()
    return ok, got


def _child(job: dict, isolation: dict) -> None:
    globs = {}
    try:
        globs = _load(job)
        _restore()
        emit({"load": "ok"})
    except KeyboardInterrupt:
        raise
    except _BaseException as e:
        _restore()
        emit({"load": "error", "error": _short(_exc_line(e).strip())})
        emit({"done": True})
        return
    filename = job.get("path") or "<docstring>"
    for i, check in enumerate(job["checks"]):
        emit({"start": i})
        run = _run_doctest if check["kind"] == "doctest" else _run_call
        try:
            ok, got = run(check, globs, filename)
        except KeyboardInterrupt:
            raise
        except _BaseException as e:  # a bug here must not look like a pass
            _restore()
            ok, got = False, f"runner error: {_exc_line(e).strip()}"
        emit({"i": i, "ok": bool(ok) is True, "got": _short(got)})
    emit({"done": True})


def _orphaned() -> None:
    """An unused spare whose host went away (maybe killed, with no chance to clean up):
    remove our own, still empty, temp dir and leave."""
    cwd = os.getcwd()
    if os.path.basename(cwd).startswith("phi-verify-"):
        with contextlib.suppress(OSError):
            os.rmdir(cwd)
    os._exit(0)


def main() -> None:
    global RESULT_FD
    # Results go to a private copy of stdout; fds 1 and 2 point at /dev/null for user code.
    RESULT_FD = os.dup(1)
    try:
        _write(RESULT_FD, b'{"ready": true}\n')
        raw = sys.stdin.read()
    except OSError:  # the host is gone
        raw = ""
    if not raw.strip():
        _orphaned()
    job = json.loads(raw)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)
    tmp = job["tmp"]
    os.chdir(tmp)
    isolation: dict = {}
    ns = _namespaces(tmp) if job.get("namespaces", True) else {}
    os.chdir(tmp)  # again: the writable bind mount now covers the old cwd
    isolation.update(ns)
    isolation.setdefault("network", "socket creation blocked (audit hook)")
    isolation.setdefault("filesystem", "writes outside the temp dir refused (audit hook)")
    isolation.setdefault("pid_namespace", False)
    sys.path[:] = [p for p in job["sys_path"] if p]
    sys.stdout = sys.stderr = io.StringIO()
    pid = os.fork()
    if pid == 0:
        try:
            try:
                dropped = _drop_privileges()
            except (OSError, AttributeError):
                dropped = False
            isolation["capabilities"] = "dropped" if dropped else "kept"
            isolation["rlimits"] = _rlimits(job["limits"])
            try:
                seccomp = _no_new_processes()
            except (OSError, AttributeError):
                seccomp = False
            isolation["processes"] = (
                "no new processes or programs (seccomp); threads allowed"
                if seccomp
                else "RLIMIT_NPROC only (does not bind root)"
            )
            _install_audit_hook(
                tmp,
                block_sockets=isolation["network"] != "namespace",
                block_ctypes=not isolation["filesystem"].startswith("read-only"),
            )
            for mod in ("ctypes", "_ctypes", "ctypes._endian"):
                sys.modules.pop(mod, None)
            emit({"isolation": isolation})
            _child(job, isolation)
        finally:
            os._exit(0)
    # The monitor: outlives the child to say how it died. The host kills the child by
    # this pid first, so that the monitor reaps it and no zombie is left to the system.
    emit({"child": pid})
    # The host enforces the wall-clock timeout; this backstop holds if the host died.
    import signal

    signal.signal(signal.SIGALRM, lambda *_: os.kill(pid, signal.SIGKILL))
    signal.alarm(int(job.get("timeout_s", 30)) + 5)
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except ChildProcessError:
            status = 0
            break
        except InterruptedError:
            continue
    try:
        if os.WIFSIGNALED(status):
            emit({"crash": {"signal": os.WTERMSIG(status)}})
        elif os.WEXITSTATUS(status) != 0:
            emit({"crash": {"exit": os.WEXITSTATUS(status)}})
    except OSError:
        pass  # the host is gone
    os._exit(0)


if __name__ == "__main__":
    main()
