"""The sandbox's processes: start one runner, know it by pidfd, kill only what we started.

``_Child`` launches the runner (``_runner.py``) in the project's interpreter: inside
bubblewrap (``isolation.py``), in the runner's own namespaces, or not isolated, in a host
temp dir swept after. It signals only its own child, through a pidfd (bubblewrap's PID 1,
whose pidfd it takes from bubblewrap's ``--info-fd``), never a pid the sandbox told it.
Part of ``sandbox.py`` (docs/contracts.md §3).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from phi_lsp.verify import isolation

RUNNER = str(Path(__file__).with_name("_runner.py"))
_READY_TIMEOUT_S = 20.0  # interpreter start-up on a loaded machine


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
