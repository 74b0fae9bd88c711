"""The sandbox's bootstrap: ``python -I -S _runner.py MODE TMP HOSTPID TMPSIZE [KEEP...]``,
started by ``sandbox.py`` in the project's interpreter (standard library only, Python 3.9
syntax). KEEP: folders the ``ns`` mode binds back over its private /tmp and /run.

MODE says what the host launched around it:

- ``bwrap``: bubblewrap already gave it a fresh read-only root, a private tmpfs ``/tmp``,
  its own ``/proc`` and every namespace; nothing more to set up here;
- ``ns``: no bubblewrap; it unshares user/mount/network/PID/IPC/UTS namespaces itself,
  makes every mount read-only, mounts private tmpfs on ``/tmp``, ``/run`` and
  ``/dev/shm`` (host sockets under them disappear) and, in the child, its own ``/proc``;
- ``none``: no namespaces (the host reports "not isolated"); Landlock limits writes to
  the temp dir ``TMP`` the host made.

Then, warm: imports done, the seccomp program built, ``{"ready": true}`` written on
stdout, the channel. It reads one job (JSON, then EOF) from stdin and forks the child
that runs it. The child, before the module starts loading: dies with this process
(PDEATHSIG), stdin/stdout/stderr on /dev/null, capabilities dropped, Landlock (``none``),
rlimits, seccomp (``seccomp.py``), then one ``{"isolation": ...}`` message; then
``_exec.run`` imports the module and reports raw results. This process waits for the
child and reports how it ended (``{"exit": n}`` / ``{"signal": n}``). Every message
carries the job's nonce; the host (``sandbox.py``) believes nothing beyond the strict
shape of each message, and judges the results itself.
"""

import contextlib
import json
import os
import platform
import resource
import signal
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, _HERE)  # -I leaves the script's folder out; the job's path replaces it
import _exec  # noqa: E402
import seccomp  # noqa: E402

del sys.path[0]

_write = os.write
_BUILTINS = dict(__builtins__.__dict__ if hasattr(__builtins__, "__dict__") else __builtins__)  # type: ignore[arg-type]
_enc_str = json.encoder.encode_basestring_ascii
_isinstance = isinstance
_int, _float, _str = int, float, str  # user code may rebind the builtins' names
_JOB_CAP = 64 << 20  # bytes of job read from the host

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x20000, 0x4000000, 0x8000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_BIND, MS_REC = 1, 2, 4, 8, 4096, 16384
MS_PRIVATE = 1 << 18
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS = 1, 4, 24, 38


def _libc():
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    return libc


def _enc(obj: object) -> str:
    # Our own encoder over functions captured before user code ran (it may patch json).
    if obj is None:
        return "null"
    if obj is True:
        return "true"
    if obj is False:
        return "false"
    if _isinstance(obj, _int):
        return _int.__repr__(obj)
    if _isinstance(obj, _float):
        return _float.__repr__(obj)
    if _isinstance(obj, _str):
        return _enc_str(obj)  # type: ignore[arg-type]  # the _isinstance alias does not narrow
    return _enc_str(object.__repr__(obj))  # flat messages only: anything else as text


class _Channel:
    """The one way out: JSON lines on a private copy of stdout, each with the nonce."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.head = ""

    def set_nonce(self, nonce: str) -> None:
        self.head = '{"nonce": ' + _enc_str(nonce)

    def emit(self, obj: dict) -> None:
        parts = [self.head] if self.head else []
        for k, v in obj.items():
            if k != "nonce":
                parts.append(_enc_str(k) + ": " + _enc(v))  # no builtins: user code patches them
        line = ("{" + ", ".join(parts) + "}\n") if not self.head else ", ".join(parts) + "}\n"
        data = line.encode("ascii")
        while data:
            n = _write(self.fd, data)
            data = data[n:]


# --- isolation the runner applies itself --------------------------------------------------


def _pdeathsig(expected_parent: int) -> None:
    """Die with the process that started us; if it is gone already, leave now."""
    with contextlib.suppress(OSError, AttributeError):  # not Linux: nothing to set
        _libc().prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if expected_parent and os.getppid() != expected_parent:
        os._exit(0)


def _unshare_namespaces(tmp_size: int, keep: tuple = ()) -> bool:
    """The ``ns`` mode: own namespaces, read-only mounts, private tmpfs /tmp, /run,
    /dev/shm; the folders in ``keep`` that those tmpfs would hide (a project under /tmp)
    bound back, read-only. False if the kernel refuses (the host then reports it)."""
    import ctypes

    libc = _libc()
    uid, gid = os.getuid(), os.getgid()
    flags = CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS
    if libc.unshare(flags) != 0:
        if libc.unshare(flags | CLONE_NEWUSER) != 0:
            return False
        try:
            for name, text in (
                ("setgroups", "deny"),
                ("uid_map", f"{uid} {uid} 1"),
                ("gid_map", f"{gid} {gid} 1"),
            ):
                with open("/proc/self/" + name, "w") as f:
                    f.write(text)
        except OSError:
            return False
    if libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None) != 0:
        return False

    class MountAttr(ctypes.Structure):
        _fields_ = [
            ("attr_set", ctypes.c_uint64),
            ("attr_clr", ctypes.c_uint64),
            ("propagation", ctypes.c_uint64),
            ("userns_fd", ctypes.c_uint64),
        ]

    sys_mount_setattr = {"x86_64": 442, "aarch64": 442}.get(platform.machine(), 442)
    at_fdcwd, at_recursive = -100, 0x8000
    ro = MountAttr(1, 0, 0, 0)  # MOUNT_ATTR_RDONLY
    if (
        libc.syscall(
            sys_mount_setattr, at_fdcwd, b"/", at_recursive, ctypes.byref(ro), ctypes.sizeof(ro)
        )
        != 0
    ):
        return False
    hidden = ("/tmp/", "/run/", "/var/run/", "/dev/shm/", "/var/tmp/")
    kept = []
    for path in keep:
        if path.startswith(hidden) and os.path.isdir(path):
            with contextlib.suppress(OSError):  # held open across the tmpfs mounts
                kept.append((path, os.open(path, os.O_PATH | os.O_CLOEXEC)))
    opts = f"size={tmp_size},mode=1777".encode()
    if libc.mount(b"tmpfs", b"/tmp", b"tmpfs", MS_NOSUID | MS_NODEV, opts) != 0:
        return False
    for hide in (b"/run", b"/var/run", b"/dev/shm", b"/var/tmp"):
        if os.path.isdir(hide) and not os.path.islink(hide):
            libc.mount(b"tmpfs", hide, b"tmpfs", MS_NOSUID | MS_NODEV, b"size=65536,mode=755")
    for path, fd in kept:  # a bind of the read-only original: read-only too
        with contextlib.suppress(OSError):
            os.makedirs(path, exist_ok=True)
            libc.mount(f"/proc/self/fd/{fd}".encode(), path.encode(), None, MS_BIND | MS_REC, None)
        os.close(fd)
    return True


def _own_proc() -> str:
    """In the ``ns`` mode's child (PID 1 of its namespace): a /proc of its own, or at
    least the host's hidden."""
    libc = _libc()
    if libc.mount(b"proc", b"/proc", b"proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None) == 0:
        return "own"
    if libc.mount(b"tmpfs", b"/proc", b"tmpfs", MS_NOSUID | MS_NODEV, b"size=4096") == 0:
        return "hidden"
    return "host"


def _landlock(tmp: str) -> bool:
    """The ``none`` mode: writing, creating, removing and executing files allowed only
    beneath ``tmp`` (executing nowhere). False where the kernel has no Landlock."""
    import ctypes

    libc = _libc()
    nr = {"x86_64": (444, 445, 446), "aarch64": (444, 445, 446)}.get(platform.machine())
    if nr is None:
        return False
    create, add_rule, restrict = nr
    abi = libc.syscall(create, None, 0, 1)  # LANDLOCK_CREATE_RULESET_VERSION
    if abi < 1:
        return False
    execute, write_file = 1, 2
    writes = write_file | 16 | 32 | 64 | 128 | 256 | 512 | 1024 | 2048 | 4096  # remove/make
    if abi >= 2:
        writes |= 8192  # REFER
    if abi >= 3:
        writes |= 16384  # TRUNCATE

    class Ruleset(ctypes.Structure):
        _fields_ = [("handled_access_fs", ctypes.c_uint64)]

    class PathBeneath(ctypes.Structure):
        _pack_ = 1
        _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]

    attr = Ruleset(writes | execute)
    ruleset = libc.syscall(create, ctypes.byref(attr), ctypes.sizeof(attr), 0)
    if ruleset < 0:
        return False
    try:
        fd = os.open(tmp, os.O_PATH | os.O_CLOEXEC)
        try:
            rule = PathBeneath(writes, fd)
            if libc.syscall(add_rule, ruleset, 1, ctypes.byref(rule), 0) != 0:
                return False
        finally:
            os.close(fd)
        with contextlib.suppress(OSError):  # /dev/null stays writable
            fd = os.open(os.devnull, os.O_PATH | os.O_CLOEXEC)
            try:
                rule = PathBeneath(write_file | (16384 if abi >= 3 else 0), fd)
                libc.syscall(add_rule, ruleset, 1, ctypes.byref(rule), 0)
            finally:
                os.close(fd)
        libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
        return libc.syscall(restrict, ruleset, 0) == 0
    finally:
        os.close(ruleset)


def _drop_capabilities() -> bool:
    """Every capability gone, from the bounding set too (root keeps its uid, not its
    powers), and no_new_privs."""
    import ctypes

    libc = _libc()

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("eff", ctypes.c_uint32), ("perm", ctypes.c_uint32), ("inh", ctypes.c_uint32)]

    for cap in range(64):
        libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)
    libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    header, data = Header(0x20080522, 0), (Data * 2)()
    return libc.capset(ctypes.byref(header), data) == 0


def _rlimits(limits: dict) -> bool:
    table = {
        "cpu_s": (resource.RLIMIT_CPU, 1),
        "address_space_mb": (resource.RLIMIT_AS, 1 << 20),
        "nproc": (resource.RLIMIT_NPROC, 1),
        "file_size_mb": (resource.RLIMIT_FSIZE, 1 << 20),
        "open_files": (resource.RLIMIT_NOFILE, 1),
        "core": (resource.RLIMIT_CORE, 1),
    }
    all_applied = True
    for key, (which, unit) in table.items():
        value = limits.get(key)
        if not _isinstance(value, (int, float)) or _isinstance(value, bool):
            continue
        value = int(value * unit)  # type: ignore[operator]  # a number: checked above
        try:
            _soft, hard = resource.getrlimit(which)
            if hard != resource.RLIM_INFINITY:
                value = min(value, hard)
            resource.setrlimit(which, (value, value))
        except (ValueError, OSError):
            all_applied = False
    return all_applied


# --- the run ----------------------------------------------------------------------------------


def _read_job() -> dict:
    chunks, size = [], 0
    while True:
        chunk = os.read(0, 1 << 20)
        if not chunk:
            break
        size += len(chunk)
        if size > _JOB_CAP:
            os._exit(2)
        chunks.append(chunk)
    if not chunks:
        os._exit(0)  # an unused spare whose host went away
    return json.loads(b"".join(chunks))


def _child(mode: str, tmp: str, job: dict, chan: _Channel, program: bytes, parent: int) -> None:
    """Runs in the forked child; never returns."""
    try:
        proc = _own_proc() if mode == "ns" else ("own" if mode == "bwrap" else "host")
        _pdeathsig(0 if mode == "ns" else parent)  # PID 1 of its namespace: no ppid
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        os.close(devnull)
        os.chdir(tmp)
        sys.stdout = sys.stderr = open(os.devnull, "w")  # noqa: SIM115
        try:
            landlock = _landlock(tmp) if mode == "none" else False
        except (OSError, AttributeError):  # no Landlock, not Linux
            landlock = False
        try:
            caps = _drop_capabilities()
        except (OSError, AttributeError):
            caps = False
        try:
            filtered = bool(program) and seccomp.install(program)
        except (OSError, AttributeError):
            filtered = False
        limits = dict(job.get("limits") or {})
        if filtered:
            # seccomp already refuses new processes; RLIMIT_NPROC counts every process
            # of the user (an editor user has hundreds) and would refuse threads too.
            limits.pop("nproc", None)
        rlimits = _rlimits(limits)
        # The last message the host believes about isolation: the module has not loaded.
        chan.emit(
            {
                "isolation": True,
                "seccomp": filtered,
                "capabilities": caps,
                "rlimits": rlimits,
                "landlock": landlock,
                "proc": proc,
            }
        )
        done = []

        def emit(obj: dict) -> None:
            if "done" in obj:
                done.append(True)
            chan.emit(obj)

        _exec.run(job, emit)
        if not done:
            chan.emit({"done": True})
    except BaseException:  # noqa: BLE001 - a runner bug shows as a missing result (error)
        if os.environ.get("PHI_LSP_RUNNER_DEBUG"):
            import builtins
            import traceback

            builtins.__dict__.update(_BUILTINS)
            os.write(chan.fd, traceback.format_exc().encode())
    os._exit(0)


def _wait(pid: int, backstop_s: float) -> int:
    # The host enforces the timeout; this backstop holds if the host is gone.
    signal.signal(signal.SIGALRM, lambda *_: os.kill(pid, signal.SIGKILL))
    signal.alarm(max(1, int(backstop_s)))
    while True:
        try:
            return os.waitpid(pid, 0)[1]
        except ChildProcessError:
            return 0
        except InterruptedError:
            continue


def main(argv: list) -> None:
    mode = argv[1] if len(argv) > 1 else "none"
    if mode == "probe-ns":  # isolation.py: can this user have the ``ns`` mode here?
        ok = _unshare_namespaces(1 << 20)
        _write(1, b"ns ok\n" if ok else b"ns refused\n")
        os._exit(0)
    tmp = argv[2] if len(argv) > 2 else "/tmp"
    host = int(argv[3]) if len(argv) > 3 else 0
    tmp_size = int(argv[4]) if len(argv) > 4 else 64 << 20
    chan = _Channel(os.dup(1))
    if mode != "bwrap":
        _pdeathsig(host)
    ready = {"ready": True}
    if mode == "ns" and not _unshare_namespaces(tmp_size, tuple(argv[5:])):
        ready["ns"] = False
    try:
        program = seccomp.build(platform.machine(), allow_inet=mode != "none")
    except (KeyError, ValueError):
        program = b""
    with contextlib.suppress(OSError, AttributeError):  # no /proc/<us>/fd, mem for the child
        _libc().prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    try:
        chan.emit(ready)
    except OSError:
        os._exit(0)
    job = _read_job()
    nonce = job.pop("nonce", "")
    chan.set_nonce(nonce if _isinstance(nonce, str) else "")
    os.chdir(tmp)
    me = os.getpid()
    pid = os.fork()
    if pid == 0:
        try:
            _child(mode, tmp, job, chan, program, me)
        finally:
            os._exit(0)
    status = _wait(pid, float(job.get("timeout_s") or 30) + 5)
    try:
        if os.WIFSIGNALED(status):
            chan.emit({"signal": os.WTERMSIG(status)})
        else:
            chan.emit({"exit": os.WEXITSTATUS(status)})
    except OSError:
        pass  # the host is gone
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv)
