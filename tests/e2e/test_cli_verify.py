"""`phi-lsp verify` as a user runs it: a real subprocess, exit codes 0/1/2, JSON shape."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

GOOD = '''
import re

WORD = re.compile(r"[a-z]+")


def words(text):
    """Lower-case words.

    >>> words("Hello, big World")
    ['ello', 'big', 'orld']
    """
    return WORD.findall(text)


class Stack:
    def push(self, x):
        """
        >>> s = Stack()
        >>> s.push(1)
        1
        >>> s.push(2)
        2
        """
        self.items = getattr(self, "items", []) + [x]
        return len(self.items)


def double(x):
    """Twice x.

    double(2) == 4
    double(-1) -> -2
    """
    return 2 * x


def plain(x):
    return x
'''

BAD = GOOD.replace("return 2 * x", "return x + 2")


def run(cmd: list[str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*cmd, "verify", *args], capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture
def good(tmp_path: Path) -> Path:
    p = tmp_path / "good.py"
    p.write_text(GOOD)
    return p


def test_all_pass_exits_0_with_json(phi_lsp_cmd: list[str], good: Path) -> None:
    r = run(phi_lsp_cmd, str(good), "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["file"] == str(good)
    assert {"network", "filesystem", "rlimits", "timeout_s"} <= out["sandbox"].keys()
    by_name = {f["name"]: f for f in out["functions"]}
    assert set(by_name) == {"words", "Stack.push", "double", "plain"}
    assert by_name["plain"]["status"] == "no-examples"
    d = by_name["double"]
    assert (d["status"], d["examples"], d["passed"], d["failed"], d["line"]) == (
        "passed",
        2,
        2,
        0,
        29,
    )
    assert d["results"][0] == {
        "source": "double(2)",
        "expected": "4",
        "got": "4",
        "ok": True,
        "line": 32,
    }
    assert by_name["Stack.push"]["status"] == "passed"


def test_a_failing_example_exits_1_and_names_it(phi_lsp_cmd: list[str], tmp_path: Path) -> None:
    p = tmp_path / "bad.py"
    p.write_text(BAD)
    r = run(phi_lsp_cmd, str(p))
    assert r.returncode == 1
    assert f"{p}:33: double(-1)" in r.stdout
    assert "expected: -2" in r.stdout and "got:      1" in r.stdout


def test_one_function_only(phi_lsp_cmd: list[str], tmp_path: Path) -> None:
    p = tmp_path / "bad.py"
    p.write_text(BAD)
    r = run(phi_lsp_cmd, str(p), "--function", "words", "--json")
    assert r.returncode == 0
    assert [f["name"] for f in json.loads(r.stdout)["functions"]] == ["words"]


def test_timeout_exits_1(phi_lsp_cmd: list[str], tmp_path: Path) -> None:
    p = tmp_path / "slow.py"
    p.write_text('def f():\n    """\n    >>> f()\n    1\n    """\n    while True:\n        pass\n')
    r = run(phi_lsp_cmd, str(p), "--json", "--timeout-ms", "500")
    assert r.returncode == 1
    assert json.loads(r.stdout)["functions"][0]["status"] == "timeout"


@pytest.mark.parametrize(
    ("content", "args", "message"),
    [
        (None, [], "no such file"),
        ("def f(:\n    pass\n", [], ":1:"),
        (b"\xff\xfe not text", [], "not UTF-8"),
        ("def f():\n    pass\n", ["--function", "g"], "no function named g"),
        ("def f():\n    pass\n", ["--timeout-ms", "0"], "--timeout-ms"),
    ],
)
def test_bad_input_exits_2(
    phi_lsp_cmd: list[str], tmp_path: Path, content: object, args: list[str], message: str
) -> None:
    p = tmp_path / "input.py"
    if isinstance(content, bytes):
        p.write_bytes(content)
    elif content is not None:
        p.write_text(content)
    r = run(phi_lsp_cmd, str(p), *args)
    assert r.returncode == 2
    assert message in r.stderr
    assert r.stdout == ""
