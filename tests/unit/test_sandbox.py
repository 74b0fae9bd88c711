"""The sandbox: real child processes, one attack per test, each contained and reported
with the host unharmed; plus the ordinary pass/fail/timeout/cancel behaviour."""

from __future__ import annotations

import ast
import os
import re
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from phi_lsp.verify import examples, isolation, sandbox, verify_function

MODES = {
    "bwrap": {},
    "namespaces": {"PHI_LSP_VERIFY_BWRAP": "0"},
    "not-isolated": {"PHI_LSP_VERIFY_NAMESPACES": "0"},
}


@pytest.fixture(autouse=True, params=list(MODES))
def isolation_mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test runs in bubblewrap, in the runner's own namespaces (no bubblewrap) and
    not isolated (what a kernel without user namespaces gets)."""
    for key, value in MODES[request.param].items():
        monkeypatch.setenv(key, value)
    if request.param == "bwrap" and isolation.mode() != "bwrap":
        pytest.skip("no working bubblewrap here")
    if request.param == "namespaces" and isolation.mode() != "ns":
        pytest.skip("no user namespaces here")
    return request.param


@pytest.fixture(autouse=True)
def track_children(monkeypatch: pytest.MonkeyPatch) -> list:
    """Record every sandbox child so tests can check that nothing of it is left."""
    made: list = []
    original = sandbox._Child.__init__

    def init(self, *args) -> None:
        original(self, *args)
        made.append(self)

    monkeypatch.setattr(sandbox._Child, "__init__", init)
    monkeypatch.setattr(sandbox._POOL, "size", 0)  # no spare: every run is recorded
    sandbox.shutdown_pool()
    return made


def module(body: str, example: str = "f()", want: str = "'done'", imports: str = "") -> str:
    indented = "\n".join("    " + line for line in body.strip("\n").splitlines())
    return f'''
import os, sys
{imports}

def f():
    """Attack.

    >>> {example}
    {want}
    """
{indented}
'''


def sandbox_processes() -> list[int]:
    """Live processes running this test process's sandbox runner (bubblewrap's included:
    the runner's command line carries the host's pid)."""
    found = []
    mine = str(os.getpid()).encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and sandbox.RUNNER.encode() in argv and mine in argv:
            found.append(int(entry))
    return found


def assert_nothing_left(children: list) -> None:
    for child in children:
        assert child.proc.poll() is not None, "the sandbox process is still running"
        if child.host_tmp:
            assert not os.path.exists(child.host_tmp), "the temp dir was not removed"
    deadline = time.monotonic() + 2  # SIGKILLed processes exit when next scheduled
    while sandbox_processes() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert sandbox_processes() == [], "a process of the sandbox survived"


def test_passing_and_failing_examples_are_named() -> None:
    src = '''
def double(x):
    """
    >>> double(2)
    4
    >>> double(3)
    7
    """
    return 2 * x
'''
    r = verify_function(src, "double")
    assert (r.status, r.passed, r.failed) == ("failed", 1, 1)
    assert r.results[1] == {
        "source": "double(3)",
        "expected": "7",
        "got": "6\n",
        "ok": False,
        "line": 6,  # 1-based line of the >>> in the file
    }


def test_module_imports_and_helpers_are_available() -> None:
    src = '''
import math
from collections import Counter

SCALE = 10

def helper(x):
    return x * SCALE

def f(xs):
    """
    f([1, 1, 2]) == 20
    """
    return helper(Counter(xs).most_common(1)[0][1]) if math.pi else 0

if __name__ == "__main__":  # imported as pytest imports it: the guard holds
    print("a script side effect that must not run")
    raise SystemExit("nor this")
'''
    r = verify_function(src, "f")
    assert r.status == "passed", r.reason


def test_no_examples_runs_nothing(track_children: list) -> None:
    r = verify_function("def f():\n    'Just prose.'\n", "f")
    assert r.status == "no-examples"
    assert track_children == []


def test_infinite_loop_is_contained(track_children: list) -> None:
    t0 = time.monotonic()
    r = verify_function(module("while True:\n    pass"), "f", timeout_s=1.0)
    assert r.status == "timeout"
    assert "1 s" in r.reason and "f()" in r.reason
    assert time.monotonic() - t0 < 6
    assert_nothing_left(track_children)


def test_fork_bomb_is_contained(track_children: list) -> None:
    r = verify_function(module("while True:\n    os.fork()"), "f", timeout_s=2.0)
    assert r.status in ("failed", "timeout", "error")
    assert r.status != "passed"
    if r.status == "failed":  # the seccomp filter refused the first fork
        assert "BlockingIOError" in r.results[0]["got"] or "Permission" in r.results[0]["got"]
    assert_nothing_left(track_children)


def test_memory_bomb_is_contained(track_children: list) -> None:
    # An untouched 64 GiB anonymous mapping: refused at once by the address-space limit.
    body = "import mmap\nm = mmap.mmap(-1, 64 << 30)\nreturn 'done'"
    t0 = time.monotonic()
    r = verify_function(module(body), "f", timeout_s=3.0)
    assert r.status == "failed"
    assert "Error" in r.results[0]["got"]  # OSError / MemoryError
    assert time.monotonic() - t0 < 5
    assert_nothing_left(track_children)


def test_writing_and_deleting_files_outside_the_temp_dir_is_refused(
    tmp_path: Path, track_children: list
) -> None:
    keep = tmp_path / "keep.txt"
    keep.write_text("precious")
    target = tmp_path / "pwned.txt"
    body = f"""
import shutil
try:
    open({str(target)!r}, "w").write("x")
except OSError:
    pass
try:
    os.remove({str(keep)!r})
except OSError:
    pass
try:
    shutil.rmtree({str(tmp_path)!r})
except OSError:
    pass
open("inside.txt", "w").write("fine")  # the temp dir itself is writable
return open("inside.txt").read()
"""
    r = verify_function(module(body, want="'fine'"), "f")
    assert r.status == "passed", r.reason
    assert keep.read_text() == "precious"
    assert not target.exists()
    assert_nothing_left(track_children)


def test_environment_secrets_are_not_readable(
    monkeypatch: pytest.MonkeyPatch, track_children: list
) -> None:
    monkeypatch.setenv("PHI_TEST_SECRET_TOKEN", "s3cr3t-value")
    body = f"""
found = [k for k, v in os.environ.items() if "s3cr3t" in v]
try:
    found.append(open("/proc/{os.getpid()}/environ").read())
except OSError as e:
    found.append(type(e).__name__)
return found
"""
    r = verify_function(module(body, want="[]"), "f")
    got = r.results[0]["got"]
    assert "s3cr3t" not in got
    assert "PermissionError" in got or "FileNotFoundError" in got
    assert_nothing_left(track_children)


def test_network_connection_is_refused(track_children: list) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(0.5)
    port = server.getsockname()[1]
    body = f"""
import socket
import tempfile
s = socket.create_connection(("127.0.0.1", {port}), timeout=1)
return 'connected'
"""
    try:
        r = verify_function(module(body, want="'connected'"), "f")
        assert r.status == "failed"
        assert "Error" in r.results[0]["got"]  # unreachable / refused / blocked
        with pytest.raises(TimeoutError):
            server.accept()  # nobody ever connected to the host
    finally:
        server.close()
    assert "network namespace" in r.sandbox["network"] or "refused" in r.sandbox["network"]
    assert_nothing_left(track_children)


def test_os_exit_is_reported(track_children: list) -> None:
    r = verify_function(module("os._exit(3)"), "f")
    assert r.status == "error"
    assert "code 3" in r.reason
    assert r.results[0]["got"] == "<crashed>"
    assert_nothing_left(track_children)


def test_segfault_is_reported(isolation_mode: str, track_children: list) -> None:
    if isolation_mode == "namespaces":
        # A real invalid read (a signal raised by PID 1 of a namespace would be ignored).
        body = "import ctypes\nreturn ctypes.string_at(0)"
    else:
        body = "import faulthandler\nfaulthandler._sigsegv()"
    r = verify_function(module(body), "f")
    assert r.status == "error"
    assert "SIGSEGV" in r.reason and "f()" in r.reason
    assert r.results[0]["got"] == "<crashed>"
    assert_nothing_left(track_children)


def test_writing_through_libc_outside_the_temp_dir_is_refused(
    tmp_path: Path, track_children: list
) -> None:
    # ctypes goes below any Python-level hook: the kernel (read-only mounts, a fresh root,
    # or Landlock where not isolated) must refuse the write.
    target = tmp_path / "pwned.txt"
    body = f"""
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
fd = libc.open({str(target).encode()!r}, os.O_WRONLY | os.O_CREAT, 0o644)
return 'refused' if fd < 0 else 'written'
"""
    r = verify_function(module(body, want="'refused'"), "f")
    assert r.status == "passed", r.reason
    assert not target.exists()
    assert_nothing_left(track_children)


def test_huge_output_is_capped(track_children: list) -> None:
    body = "print('x' * 50_000_000)\nfor _ in range(200_000):\n    print('y' * 100)\nreturn 'done'"
    r = verify_function(module(body), "f", timeout_s=10)
    assert r.status in ("failed", "timeout")
    got = r.results[0]["got"] or ""
    assert len(got) < 10_000
    if r.status == "failed":
        assert "more characters" in got
    assert_nothing_left(track_children)


def test_recursion_limit_abuse_is_contained(track_children: list) -> None:
    src = '''
import sys

def f(n):
    """
    >>> f(0)
    'never'
    >>> f.__name__
    'f'
    """
    sys.setrecursionlimit(10**8)
    return list(map(f, [n + 1]))  # C-level recursion: exhausts the C stack
'''
    r = verify_function(src, "f", timeout_s=3)
    assert r.status in ("error", "timeout")
    assert r.results[0]["ok"] is False
    assert_nothing_left(track_children)


def test_redefined_builtins_do_not_fool_the_checker(track_children: list) -> None:
    src = '''
import builtins

def f(x):
    """
    >>> f(2)
    4

    f(3) == 6
    """
    builtins.repr = lambda o: "4"
    builtins.str = lambda o="": "6"
    builtins.isinstance = lambda *a: True
    builtins.len = lambda o: 0
    builtins.print = lambda *a, **k: None
    return x + 1  # wrong on purpose
'''
    r = verify_function(src, "f")
    assert (r.status, r.passed, r.failed) == ("failed", 0, 2)
    assert r.results[0]["got"].strip() == "3"
    assert_nothing_left(track_children)


def test_cancel_kills_the_child(track_children: list) -> None:
    cancel = threading.Event()
    threading.Timer(0.5, cancel.set).start()
    t0 = time.monotonic()
    r = verify_function(module("while True:\n    pass"), "f", timeout_s=30, cancel=cancel)
    assert r.status == "error" and r.reason == "cancelled"
    assert time.monotonic() - t0 < 5
    assert_nothing_left(track_children)


def test_broken_module_is_an_error_not_a_failure() -> None:
    src = 'import no_such_module_xyz\n\ndef f():\n    """\n    >>> f()\n    1\n    """\n    return 1\n'
    r = verify_function(src, "f")
    assert r.status == "error"
    assert "no_such_module_xyz" in r.reason


def test_sandbox_reports_what_isolation_was_applied(isolation_mode: str) -> None:
    r = verify_function(module("return 'done'"), "f")
    assert r.status == "passed"
    assert r.sandbox["isolated"] is (isolation_mode != "not-isolated")
    if isolation_mode == "not-isolated":
        assert r.sandbox["filesystem"] == "writes only in a temp dir (Landlock)"
        assert r.sandbox["network"] == "socket creation refused (seccomp)"
    else:
        assert r.sandbox["proc"] == "own (PID namespace)"
        assert "private tmpfs" in r.sandbox["tmp"]
    assert r.sandbox["processes"].startswith("no new processes")
    assert r.sandbox["capabilities"] == "dropped"
    assert r.sandbox["rlimits"]["address_space_mb"] == 1024


def test_threads_asyncio_and_socketpair_still_work() -> None:
    # seccomp refuses new processes and Unix socket() calls, not what ordinary code uses.
    body = """
import asyncio, threading
box = []
t = threading.Thread(target=box.append, args=(1,))
t.start()
t.join()
asyncio.run(asyncio.sleep(0))
import socket
import tempfile
a, b = socket.socketpair()
a.sendall(b"x")
return ('done' if box == [1] and b.recv(1) == b"x" else 'broken')
"""
    r = verify_function(module(body), "f")
    assert r.status == "passed", (r.reason, r.results)


def test_a_file_saved_in_tmp_does_not_expose_the_hosts_tmp(isolation_mode: str) -> None:
    # Its folder (/tmp) is on the import path; binding it would bring the host's /tmp
    # (sockets, other users' files) into the sandbox and cover its private one.
    fd, path = tempfile.mkstemp(suffix=".py", dir="/tmp")
    os.close(fd)
    marker = Path(path).name
    # What the host's /tmp holds, less the folders the sandbox binds read-only on purpose
    # (a checkout or interpreter under /tmp shows as its mount point, not as the host's
    # /tmp): none of it may be seen inside.
    bound = {Path(p).parts[2] for p in [*sys.path, str(Path(__file__))] if p.startswith("/tmp/")}
    host = sorted(set(os.listdir("/tmp")) - bound)
    assert marker in host
    src = module(f"return sorted(set(os.listdir('/tmp')) & set({host!r}))", want="[]")
    Path(path).write_text(src)
    try:
        r = verify_function(src, "f", path=path)
        if isolation_mode == "not-isolated":
            assert r.sandbox["isolated"] is False
        else:
            assert r.status == "passed", (r.reason, r.results)
            assert marker not in r.results[0]["got"]
    finally:
        os.unlink(path)


def test_editable_installs_of_the_interpreter_import_inside(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # setuptools' editable finder maps a package to a source folder off sys.path; the
    # sandbox sees that folder (read-only) so the package imports as it does outside.
    finders = sorted(Path(sys.prefix).glob("lib/python3*/site-packages/__editable___*finder.py"))
    if not finders:
        pytest.skip("no setuptools editable finder in this environment to copy")
    src = tmp_path / "src" / "demo_editable_pkg"
    src.mkdir(parents=True)
    (src / "__init__.py").write_text("ANSWER = 42\n")
    site = tmp_path / "venv" / "site-packages"
    site.mkdir(parents=True)
    text = finders[0].read_text()
    text = re.sub(r"(?m)^MAPPING\b.*$", f"MAPPING = {{'demo_editable_pkg': {str(src)!r}}}", text)
    text = re.sub(r"(?m)^NAMESPACES\b.*$", "NAMESPACES = {}", text)
    (site / "__editable___demo_finder.py").write_text(text)
    (site / "__editable__.demo.pth").write_text(
        "import __editable___demo_finder; __editable___demo_finder.install()\n"
    )
    monkeypatch.setattr(sys, "path", [*sys.path, str(site)])
    code = module("import demo_editable_pkg\nreturn demo_editable_pkg.ANSWER", want="42")
    r = sandbox.run_checks(
        code,
        "f",
        examples.extract(ast.get_docstring(ast.parse(code).body[1], clean=False), "f").checks,
    )
    assert r.status == "passed", (r.reason, r.results)


def test_the_projects_own_folder_is_visible_but_read_only(tmp_path: Path) -> None:
    (tmp_path / "helper_mod_xyz.py").write_text("VALUE = 7\n")
    path = tmp_path / "main_mod_xyz.py"
    body = """
import helper_mod_xyz
try:
    open(os.path.join(os.path.dirname(__file__), "pwned"), "w").write("x")
    wrote = "wrote"
except OSError:
    wrote = "refused"
return (helper_mod_xyz.VALUE, wrote)
"""
    src = module(body, want="(7, 'refused')")
    path.write_text(src)
    r = verify_function(src, "f", path=str(path))
    assert r.status == "passed", (r.reason, r.results)
    assert not (tmp_path / "pwned").exists()


def test_a_runner_that_cannot_start_says_why(tmp_path: Path) -> None:
    # An interpreter that answers questions but cannot run the runner (e.g. too old).
    fake = tmp_path / "bin" / "python"
    fake.parent.mkdir()
    fake.write_text(
        "#!/bin/sh\n"
        'case "$*" in *_runner.py*) echo "SyntaxError: runner needs Python 3.9" >&2; exit 1;; esac\n'
        f'exec {sys.executable} "$@"\n'
    )
    fake.chmod(0o755)
    r = verify_function(module("return 'done'"), "f", python=str(fake))
    assert r.status == "error"
    assert "did not start" in r.reason and "runner needs Python 3.9" in r.reason, r.reason


def test_a_broken_interpreter_is_one_clear_error(tmp_path: Path) -> None:
    checks = examples.extract("\n>>> f()\n'done'\n", "f").checks
    r = sandbox.run_checks(module("return 'done'"), "f", checks, python=str(tmp_path / "nope"))
    assert r.status == "error"
    assert str(tmp_path / "nope") in r.reason and "\n" not in r.reason
