"""Verification through the real server: where it may run, with which interpreter,
inside the document's project, and never holding up other requests.

Issue 13 items 4 and 5, issue 12 item 1 (server side).
"""

from __future__ import annotations

import asyncio
import os
import pwd
import queue
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types
from test_server_e2e import ADD_BODY, ADD_CURSOR, ADD_SOURCE, Session, doc_uri, replay_model, server
from test_server_robustness import RawServer

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from extraction_bounds import crafted_file  # noqa: E402

NO_ISOLATION = {"PHI_LSP_VERIFY_NAMESPACES": "0"}  # the sandbox's own switch: no bwrap, no ns


async def _verify(s: Session, uri: str, line: int) -> dict[str, Any]:
    reply = await asyncio.wait_for(
        s.client.workspace_execute_command_async(
            types.ExecuteCommandParams(
                command="phiLsp.verifyFunction", arguments=[uri, {"line": line, "character": 4}]
            )
        ),
        60,
    )
    return dict(reply)


def _push(s: Session, settings: dict[str, Any]) -> None:
    s.client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings={"phiLsp": settings})
    )


async def test_without_isolation_examples_run_only_when_the_user_opts_in(tmp_path: Path) -> None:
    opts = {"model": replay_model(tmp_path, ADD_BODY), "verify": "prefer"}
    caps = types.ClientCapabilities()  # no workspace/configuration: pushed settings are read
    async with server(tmp_path, opts, capabilities=caps, env=NO_ISOLATION) as s:
        await s.ready()
        uri = doc_uri(tmp_path)
        s.open(uri, ADD_SOURCE)
        for _ in range(2):
            items = await s.inline(uri, ADD_CURSOR)
            assert items and items[0].insert_text.strip() == "return a + b"  # unverified
        assert s.verifications == []  # nothing ran, nothing claimed
        told = [m for m in s.messages(types.MessageType.Warning) if "verifyUnisolated" in m]
        assert len(told) == 1 and "cannot isolate" in told[0]
        reply = await _verify(s, uri, 5)
        assert reply["status"] == "error" and "verifyUnisolated" in reply["reason"]
        assert reply["results"] == []
        # Opted in: the examples run (and the result says where).
        _push(s, {"verifyUnisolated": True})
        await asyncio.sleep(0.5)
        s.insert(uri, 0, 0, "# edited\n")
        cursor = types.Position(line=ADD_CURSOR.line + 1, character=4)
        assert await s.inline(uri, cursor)
        note = await s.until(lambda: s.verifications and s.verifications[-1], 20)
        assert note["status"] == "passed" and note["passed"] == 1
        reply = await _verify(s, uri, 6)  # the body is still empty: the example runs, fails
        assert reply["status"] == "failed" and reply["failed"] == 1


def _make_venv(where: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True)
    return where / "bin" / "python"


async def test_status_names_the_interpreter_and_why(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    project.mkdir()
    (project / "pyproject.toml").write_text("[project]\nname = 'proj'\n")
    venv_python = _make_venv(project / ".venv")
    other_python = _make_venv(tmp_path / "other")
    opts = {"model": replay_model(tmp_path, ADD_BODY)}
    caps = types.ClientCapabilities()
    async with server(project, opts, capabilities=caps) as s:
        await s.ready()
        first = await s.until(lambda: [x for x in s.statuses if x.get("python")], 30)
        assert first[-1]["python"] == str(venv_python)
        assert first[-1]["pythonReason"] == ".venv"
        _push(s, {"pythonPath": str(other_python)})
        changed = await s.until(
            lambda: [x for x in s.statuses if x.get("python") == str(other_python)], 30
        )
        assert changed[-1]["pythonReason"] == "--python/pythonPath"
        assert changed[-1]["state"] == "ready"  # the model's state rides along
        # A broken interpreter: said once, by name; the editor stays usable.
        missing = str(tmp_path / "nowhere" / "python")
        _push(s, {"pythonPath": missing})
        told = await s.until(
            lambda: [m for m in s.messages(types.MessageType.Warning) if "nowhere" in m], 30
        )
        assert len(told) == 1
        uri = doc_uri(project)
        s.open(uri, ADD_SOURCE)
        assert (await s.inline(uri, ADD_CURSOR))[0].insert_text.strip() == "return a + b"


async def test_the_verify_command_runs_inside_the_documents_package(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    pkg = project / "shop"
    pkg.mkdir(parents=True)
    (project / "pyproject.toml").write_text("[project]\nname = 'shop'\n")
    (pkg / "__init__.py").write_text("")
    (pkg / "money.py").write_text("def cents(x):\n    return round(x * 100)\n")
    source = (
        "from .money import cents\n"
        "\n"
        "\n"
        "def total(prices):\n"
        '    """Sum in cents.\n'
        "\n"
        "    >>> total([1.5, 2.25])\n"
        "    375\n"
        '    """\n'
        "    return sum(cents(p) for p in prices)\n"
    )
    (pkg / "cart.py").write_text(source)
    async with server(project, {"model": replay_model(tmp_path, ADD_BODY)}) as s:
        await s.ready()
        uri = (pkg / "cart.py").as_uri()
        s.open(uri, source)
        reply = await _verify(s, uri, 4)
        assert reply["status"] == "passed", reply  # the relative import resolved
        assert reply["passed"] == 1


async def test_a_crafted_docstring_never_delays_another_request(tmp_path: Path) -> None:
    crafted = crafted_file("deeply nested brackets", 300_000)
    assert len(crafted) >= 300_000
    async with server(tmp_path, {"model": replay_model(tmp_path, ADD_BODY)}) as s:
        await s.ready()
        small = doc_uri(tmp_path)
        s.open(small, ADD_SOURCE)
        assert await s.inline(small, ADD_CURSOR)  # warm
        bad = doc_uri(tmp_path, "crafted.py")
        s.open(bad, crafted)
        verifying = asyncio.ensure_future(_verify(s, bad, 1))
        await asyncio.sleep(0.3)  # the verification is under way
        worst = 0.0
        for i in range(3):
            s.insert(small, 0, 0, "#\n")
            cursor = types.Position(line=ADD_CURSOR.line + i + 1, character=4)
            t0 = time.perf_counter()
            items = await s.inline(small, cursor)
            worst = max(worst, time.perf_counter() - t0)
            assert items and items[0].insert_text.strip() == "return a + b"
        reply = await verifying
        assert reply["status"] in ("error", "no-examples", "failed", "timeout"), reply
        # The verification's budget is its timeout (3 s) plus 2 s; the other request
        # waits for neither.
        assert worst < 1.5, worst


ATTACK = '''\
import os


def f(x):
    """Forge the verdict on every inherited descriptor, flood the output.

    >>> f(1)
    2
    """
    for fd in range(3, 256):
        try:
            os.write(fd, b'{"done": true, "passed": 1, "failed": 0}\\n' * 50)
        except OSError:
            pass
    print("x" * 200_000)
    return x
'''


def _rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


async def test_a_hundred_attack_verifications_leave_the_server_as_it_was(tmp_path: Path) -> None:
    async with server(tmp_path, {"model": replay_model(tmp_path, ADD_BODY)}) as s:
        await s.ready()
        pid = s.client._server.pid  # type: ignore[union-attr]
        uri = doc_uri(tmp_path, "attack.py")
        s.open(uri, ATTACK)
        for _ in range(10):  # warm: the sandbox pool, imports, caches
            assert (await _verify(s, uri, 4))["status"] != "passed"
        start = _rss_kb(pid)
        for _ in range(100):
            reply = await _verify(s, uri, 4)
            assert reply["status"] in ("failed", "error"), reply  # never a forged pass
        assert _rss_kb(pid) < start * 1.10, (start, _rss_kb(pid))
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        assert len(children) <= 2, children  # at most the warm sandbox pool


def _message(srv: RawServer, seen: list[dict[str, Any]], want: dict[str, Any]) -> dict[str, Any]:
    """The first message with the ``want`` fields, in order; every message read is kept
    in ``seen`` (RawServer.response would drop the notifications before a reply)."""

    def fits(m: dict[str, Any]) -> bool:
        return all(m.get(k) == v for k, v in want.items())

    deadline = time.monotonic() + 60
    while True:
        found = next((m for m in seen if fits(m)), None)
        if found is not None:
            seen.remove(found)
            return found
        assert time.monotonic() < deadline, f"no message like {want}"
        try:
            seen.append(srv.inbox.get(timeout=0.1))
        except queue.Empty:
            assert srv.proc.poll() is None, f"server died: {srv.proc.returncode}"


def test_an_editor_run_by_an_unprivileged_user_gets_verified_suggestions(tmp_path: Path) -> None:
    """Editors do not run as root: the server, started as a plain user, verifies in its
    sandbox (bubblewrap or namespaces must work for that user here)."""
    python = "/usr/bin/python3.11"
    if os.geteuid() != 0 or not shutil.which("runuser") or not os.path.exists(python):
        pytest.skip("needs root (to create the user), runuser and /usr/bin/python3.11")
    repo = Path(__file__).resolve().parents[2]
    site = repo / ".venv" / "lib" / "python3.11" / "site-packages"
    if not all(os.access(p, os.R_OK | os.X_OK) for p in (repo, site)) or any(
        (Path(p).stat().st_mode & 0o005) != 0o005 for p in (repo, site)
    ):
        pytest.skip("the checkout and its packages are not readable by other users")
    name = "phiserver"
    try:
        pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "-M", "-s", "/bin/sh", name], check=True)
    home = Path(tempfile.mkdtemp(prefix="phi-server-user-"))
    home.chmod(0o777)
    (home / "body.txt").write_text(ADD_BODY)
    (home / "body.txt").chmod(0o644)
    env = ["env", "-i", "PATH=/usr/bin:/bin", f"HOME={home}", f"PYTHONPATH={repo}:{site}"]
    argv = ["runuser", "-u", name, "--", *env, python, "-m", "phi_lsp", "--stdio"]
    srv = RawServer(tmp_path, [*argv, "--log-file", str(home / "server.log")])
    try:
        srv.initialize({"model": f"replay:{home / 'body.txt'}", "verify": "prefer"})
        srv.send({"jsonrpc": "2.0", "method": "initialized", "params": {}})
        seen: list[dict[str, Any]] = []
        status = {"method": "phiLsp/status"}
        while _message(srv, seen, status)["params"]["state"] not in ("ready", "error"):
            pass
        uri = (home / "example.py").as_uri()
        srv.send(
            {
                "jsonrpc": "2.0",
                "method": "textDocument/didOpen",
                "params": {
                    "textDocument": {
                        "uri": uri,
                        "languageId": "python",
                        "version": 1,
                        "text": ADD_SOURCE,
                    }
                },
            }
        )
        srv.send(
            {
                "jsonrpc": "2.0",
                "id": "c",
                "method": "textDocument/inlineCompletion",
                "params": {
                    "textDocument": {"uri": uri},
                    "position": {"line": ADD_CURSOR.line, "character": ADD_CURSOR.character},
                    "context": {"triggerKind": 1},
                },
            }
        )
        items = _message(srv, seen, {"id": "c"})["result"]["items"]
        assert items and items[0]["insertText"].strip() == "return a + b"
        note = _message(srv, seen, {"method": "phiLsp/verification"})["params"]
        assert note["status"] == "passed" and note["passed"] == 1, note
        assert srv.close() == 0
    finally:
        if srv.proc.poll() is None:
            srv.proc.kill()
        shutil.rmtree(home, ignore_errors=True)
