"""``phi-lsp complete`` as a user runs it: a real process, real files, real models
(``replay:`` for exact answers, ``tiny`` for a real PhiForCausalLM)."""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from phi_lsp.cli.complete import write_atomic
from phi_lsp.cli.errors import UsageError

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"

SOURCE = '''\
"""Module."""
import math


def area(r):
    """Area of a circle of radius r.

    >>> round(area(1), 2)
    3.14
    """


class Box:
    def volume(self, w, h, d):
        """Volume."""
        pass

    def empty(self):
        """Nothing yet."""
        raise NotImplementedError


def done(x):
    """Already written."""
    return x
'''


def run(cmd: list[str], *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*cmd, "complete", *args], cwd=cwd, capture_output=True, text=True, timeout=600
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "m.py").write_text(SOURCE)
    (tmp_path / "rest.txt").write_text("return math.pi * r * r\n\n\nclass Box:\n")
    return tmp_path


def test_default_output_is_a_unified_diff_and_file_is_untouched(
    phi_lsp_cmd: list[str], project: Path
) -> None:
    r = run(phi_lsp_cmd, "m.py", "--function", "area", "--model", "replay:rest.txt", cwd=project)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("--- a/m.py\n+++ b/m.py\n")
    assert "+    return math.pi * r * r\n" in r.stdout
    assert (project / "m.py").read_text() == SOURCE


def test_json_record_has_lsp_range_of_the_original(phi_lsp_cmd: list[str], project: Path) -> None:
    r = run(phi_lsp_cmd, "m.py", "--line", "7", "--json", "--model", "replay:rest.txt", cwd=project)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["file"] == "m.py" and out["model"] == "replay:rest.txt"
    (rec,) = out["completions"]
    assert rec["function"] == "area" and rec["line"] == 4
    assert rec["text"] == "\n    return math.pi * r * r"
    assert rec["range"] == {
        "start": {"line": 9, "character": 7},
        "end": {"line": 9, "character": 7},
    }
    assert rec["latency_ms"] >= 0


def test_write_fills_every_empty_function_and_replaces_placeholders(
    phi_lsp_cmd: list[str], project: Path
) -> None:
    (project / "rest.txt").write_text("return 42\n\ndef after():\n")
    r = run(phi_lsp_cmd, "m.py", "--all", "--write", "--model", "replay:rest.txt", cwd=project)
    assert r.returncode == 0, r.stderr
    new = (project / "m.py").read_text()
    tree = ast.parse(new)
    bodies = {
        n.name: ast.unparse(n.body[-1]) for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)
    }
    assert bodies == {
        "area": "return 42",
        "volume": "return 42",
        "empty": "return 42",
        "done": "return x",  # had a body: left alone
    }
    assert "pass" not in new and "NotImplementedError" not in new
    assert "3/3" in r.stderr  # progress on stderr
    assert not list(project.glob(".m.py.*"))  # no temp files left behind


def test_at_cursor_keeps_text_before_it(phi_lsp_cmd: list[str], project: Path) -> None:
    src = 'def f(x):\n    """Doc."""\n    return x +\n'
    (project / "c.py").write_text(src)
    (project / "rest.txt").write_text(" 1\n\ndef g():\n")
    r = run(
        phi_lsp_cmd, "c.py", "--at", "3:15", "--json", "--model", "replay:rest.txt", cwd=project
    )
    assert r.returncode == 0, r.stderr
    (rec,) = json.loads(r.stdout)["completions"]
    assert rec["text"] == " 1"
    assert rec["range"]["start"] == {"line": 2, "character": 14}


def test_class_method_by_qualified_name(phi_lsp_cmd: list[str], project: Path) -> None:
    (project / "rest.txt").write_text("return w * h * d\n\n    def empty(self):\n")
    r = run(
        phi_lsp_cmd,
        "m.py",
        "--function",
        "Box.volume",
        "--json",
        "--model",
        "replay:rest.txt",
        cwd=project,
    )
    assert r.returncode == 0, r.stderr
    (rec,) = json.loads(r.stdout)["completions"]
    assert rec["function"] == "Box.volume"
    assert rec["text"] == "\n        return w * h * d"
    # The placeholder `pass` is replaced: the range ends after it.
    assert rec["range"]["end"]["line"] == rec["range"]["start"]["line"] + 1


@pytest.mark.parametrize(
    "args,message",
    [
        (["missing.py", "--all"], "no such file"),
        (["notes.txt", "--all"], "not a Python file"),
        (["blob.py", "--all"], "binary"),
        (["stub.pyi", "--all"], "stub file"),
        (["latin.py", "--all"], "not UTF-8"),
        (["m.py", "--line", "3"], "no function at line 3"),
        (["m.py", "--line", "0"], "1-based"),
        (["m.py", "--function", "nope"], "no function named 'nope'"),
        (["m.py", "--at", "1:1"], "not inside a function body"),
        (["m.py", "--at", "x"], "LINE:COL"),
        (["m.py", "--at", "999:1"], "past the end"),
        (["m.py", "--all", "--model", "nonsense:spec"], "--model"),
        (["m.py", "--all", "--max-new-tokens", "0"], "max-new-tokens"),
    ],
)
def test_bad_input_is_one_line_and_exit_2_and_file_untouched(
    phi_lsp_cmd: list[str], project: Path, args: list[str], message: str
) -> None:
    (project / "notes.txt").write_text("def f(): pass\n")
    (project / "stub.pyi").write_text("def f() -> int: ...\n")
    (project / "blob.py").write_bytes(b"\x00\x01\x02def")
    (project / "latin.py").write_bytes("x = 'caf\xe9'\n".encode("latin-1"))
    if "--model" not in args:
        args = [*args, "--model", "replay:rest.txt"]
    before = {p.name: p.read_bytes() for p in project.iterdir()}
    r = run(phi_lsp_cmd, *args, cwd=project)
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and message in lines[0], r.stderr
    assert r.stdout == ""
    assert {p.name: p.read_bytes() for p in project.iterdir()} == before


def test_write_refuses_a_file_changed_since_it_was_read(tmp_path: Path) -> None:
    f = tmp_path / "m.py"
    f.write_text("x = 1\n")
    original = f.read_bytes()
    f.write_text("x = 2  # edited by the user meanwhile\n")
    with pytest.raises(UsageError, match="changed on disk"):
        write_atomic(f, original, "x = 3\n")
    assert f.read_text() == "x = 2  # edited by the user meanwhile\n"
    assert list(tmp_path.iterdir()) == [f]  # temp file removed


def test_write_keeps_permissions_and_crlf(phi_lsp_cmd: list[str], project: Path) -> None:
    src = 'def f(x):\r\n    """Doc."""\r\n\r\n\r\ndef g():\r\n    return 1\r\n'
    f = project / "w.py"
    f.write_bytes(src.encode())
    f.chmod(0o640)
    (project / "rest.txt").write_text("return x\n\n\ndef g():\n")
    r = run(
        phi_lsp_cmd, "w.py", "--function", "f", "--write", "--model", "replay:rest.txt", cwd=project
    )
    assert r.returncode == 0, r.stderr
    assert (
        f.read_bytes() == src.replace('"""Doc."""\r\n', '"""Doc."""\r\n    return x\r\n').encode()
    )
    assert f.stat().st_mode & 0o777 == 0o640


@pytest.fixture(scope="session")
def tiny_built() -> Path:
    """The `tiny` model, trained once into the user cache (a few minutes the first time)."""
    from model_runtime import tiny

    return tiny.ensure_tiny()


def test_tiny_model_fills_the_examples_and_they_still_parse(
    phi_lsp_cmd: list[str], tiny_built: Path, tmp_path: Path
) -> None:
    """A real PhiForCausalLM (the `tiny` model) writes bodies; the files stay valid Python."""
    filled = 0
    for name in ("demo.py", "strings_demo.py", "numbers_demo.py"):
        f = tmp_path / name
        shutil.copy(EXAMPLES / name, f)
        before = f.read_text()
        r = run(phi_lsp_cmd, name, "--all", "--write", "--model", "tiny", cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        after = f.read_text()
        ast.parse(after)
        filled += after.count("\n") - before.count("\n") > 0
    assert filled >= 2


DOCTESTED = '''\
def add(a, b):
    """Sum of a and b.

    >>> add(2, 3)
    5
    """
'''


def test_verify_reports_failing_examples_and_write_keeps_the_file(
    phi_lsp_cmd: list[str], tmp_path: Path
) -> None:
    f = tmp_path / "a.py"
    f.write_text(DOCTESTED)
    (tmp_path / "rest.txt").write_text("return a - b\n")
    args = ["a.py", "--function", "add", "--verify", "--model", "replay:rest.txt"]
    r = run(phi_lsp_cmd, *args, "--json", cwd=tmp_path)
    assert r.returncode == 1, r.stderr  # like `phi-lsp verify`: examples fail
    (rec,) = json.loads(r.stdout)["completions"]
    assert rec["status"] == "failed" and rec["verified"] is False
    assert rec["examples"] == {"passed": 0, "failed": 1}
    assert rec["candidates_tried"] == 4  # the default with --verify
    r = run(phi_lsp_cmd, *args, "--write", cwd=tmp_path)
    assert "add: not written (failed)" in r.stderr
    assert f.read_text() == DOCTESTED


def test_verify_write_writes_a_passing_body(phi_lsp_cmd: list[str], tmp_path: Path) -> None:
    f = tmp_path / "a.py"
    f.write_text(DOCTESTED)
    (tmp_path / "rest.txt").write_text("return a + b\n")
    r = run(
        phi_lsp_cmd,
        "a.py",
        "--all",
        "--verify",
        "--write",
        "--model",
        "replay:rest.txt",
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    assert f.read_text() == DOCTESTED + "    return a + b\n"


def test_tiny_generation_ends_at_the_body_not_at_max_new_tokens(tiny_built: Path) -> None:
    """With a real PhiForCausalLM the stop rule ends generation when the body ends
    (the engine's stop_fn), instead of generating max_new_tokens and cutting."""
    from model_runtime import load_engine
    from phi_lsp.completion import Completer
    from phi_lsp.documents import Document
    from phi_lsp.functions import in_file as functions
    from phi_lsp.settings import Settings

    engine = load_engine("tiny", device="cpu")
    finishes = []
    inner_generate = engine.generate

    def generate(request, should_stop=None):  # type: ignore[no-untyped-def]
        g = inner_generate(request, should_stop)
        finishes.append((g.finish_reason, g.new_tokens))
        return g

    engine.generate = generate  # type: ignore[method-assign]
    doc = Document((EXAMPLES / "numbers_demo.py").read_text())
    completer = Completer(engine, Settings(max_new_tokens=128))
    for fn in functions(doc):
        if fn.empty and "." not in fn.qualname:
            completer.fill(doc, fn)
    assert len(finishes) == 3
    assert all(reason in ("eos", "stop_fn") and n < 128 for reason, n in finishes), finishes
