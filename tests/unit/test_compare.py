"""Host-side verdicts (verify/compare.py): from the runner's raw strings to pass/fail.

Doctest verdicts are held against the real ``pytest --doctest-modules`` on the same
examples: every case below is one function; pytest runs the module, and ``judge`` gets
the raw row the runner would send (stdout with the displayhook's repr, the exception's
``format_exception_only`` text), produced here by running the example in-process.
"""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
import textwrap
import time
import traceback
from pathlib import Path

import pytest

from phi_lsp.verify.compare import GOT_CAP, PYTEST_DEFAULT_FLAGS, judge
from phi_lsp.verify.examples import Check, extract

# name -> docstring body (examples of that function; each function returns its argument)
DOCTEST_CASES: dict[str, str] = {
    "plain_pass": ">>> f(3)\n3",
    "plain_fail": ">>> f(3)\n4",
    "quote_style": '>>> f("21")\n"21"',  # pytest fails it: repr is '21'
    "true_for_1": ">>> f(True)\n1",
    "ellipsis_default": ">>> f(list(range(20)))\n[0, 1, ..., 19]",
    "ellipsis_off": ">>> f(list(range(20)))  # doctest: -ELLIPSIS\n[0, 1, ..., 19]",
    "normalize_ws": ">>> f([1, 2])  # doctest: +NORMALIZE_WHITESPACE\n[1,   2]",
    "ws_without_flag": ">>> f([1, 2])\n[1,   2]",
    "blankline": ">>> print('a\\n\\nb')\na\n<BLANKLINE>\nb",
    "print_and_value": ">>> print('x'); f(2)\nx\n2",
    # Not here: ">>> f(2) == 2" with no output line. pytest fails it whatever f does;
    # extraction reads it as "is True" on purpose (test_examples.py), the one deviation.
    "none_prints_nothing": ">>> f(None)",
    "exception_expected": (
        ">>> f(1) // 0\nTraceback (most recent call last):\n  ...\n"
        "ZeroDivisionError: integer division or modulo by zero"
    ),
    "exception_wrong_msg": (
        ">>> f(1) // 0\nTraceback (most recent call last):\nZeroDivisionError: nope"
    ),
    "exception_ignore_detail": (
        ">>> f(1) // 0  # doctest: +IGNORE_EXCEPTION_DETAIL\n"
        "Traceback (most recent call last):\nZeroDivisionError: nope"
    ),
    "exception_wrong_type": (">>> f(1) // 0\nTraceback (most recent call last):\nValueError: x"),
    "exception_unexpected": ">>> f(1) // 0\n1",
    "exception_after_output": (
        ">>> print('hi'); f(1) // 0\nTraceback (most recent call last):\n"
        "ZeroDivisionError: integer division or modulo by zero"
    ),
    "syntax_error_expected": (
        ">>> f(1) +\nTraceback (most recent call last):\nSyntaxError: invalid syntax"
    ),
    "skip": ">>> f(1)  # doctest: +SKIP\n2",
    "number_pass": ">>> f(1 / 3)  # doctest: +NUMBER\n0.333",
    "number_last_digit": ">>> f(1 / 3)  # doctest: +NUMBER\n0.334",  # within 1e-3: passes
    "number_fail": ">>> f(1 / 3)  # doctest: +NUMBER\n0.35",
    "number_list": ">>> f([3.14159, 2.71828])  # doctest: +NUMBER\n[3.14, 2.72]",
    "allow_unicode": ">>> f('x')  # doctest: +ALLOW_UNICODE\nu'x'",
    "allow_bytes": ">>> f(b'x')  # doctest: +ALLOW_BYTES\n'x'",
    "bytes_without_flag": ">>> f(b'x')\n'x'",
    "float_repr": ">>> f(0.1 + 0.2)\n0.3",
    "multi_line_out": ">>> for i in range(2): print(f(i))\n0\n1",
}


def _module(cases: dict[str, str]) -> str:
    parts = ["def f(x=None):\n    return x\n"]
    for name, body in cases.items():
        doc = textwrap.indent(body.replace("\\", "\\\\"), "    ")
        parts.append(f'def {name}(x=None):\n    """\n{doc}\n    """\n    return x\n')
    return "\n\n".join(parts)


def _pytest_verdicts(tmp: Path, source: str, ini_flags: str | None) -> dict[str, bool]:
    (tmp / "mod.py").write_text(source)
    ini = "[pytest]\n" + (f"doctest_optionflags = {ini_flags}\n" if ini_flags is not None else "")
    (tmp / "pytest.ini").write_text(ini)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--doctest-modules",
            "-q",
            "-rA",
            "-p",
            "no:cacheprovider",
        ],
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=120,
    )
    verdicts = {}
    for line in proc.stdout.splitlines():
        for word, ok in (("PASSED", True), ("FAILED", False), ("SKIPPED", True)):
            if line.startswith(word) and "mod.py::mod." in line:
                name = line.split("mod.py::mod.", 1)[1].split()[0]
                verdicts[name] = ok
    assert verdicts, proc.stdout + proc.stderr
    return verdicts


def _raw_row(source: str, globs: dict) -> dict:
    """What the runner sends for one doctest example: run as doctest runs it."""
    out = io.StringIO()
    exc = None
    with contextlib.redirect_stdout(out):
        saved, sys.displayhook = sys.displayhook, sys.__displayhook__
        try:
            exec(compile(source, "<doctest>", "single"), globs)
        except Exception as e:
            exc = "".join(traceback.format_exception_only(type(e), e))
        finally:
            sys.displayhook = saved
    return {"i": 0, "out": out.getvalue(), "exc": exc, "value": None}


def _judge_module(source: str, names: list[str], project_flags) -> dict[str, bool]:
    globs: dict = {}
    exec(compile(source, "mod.py", "exec"), globs)
    verdicts = {}
    for name in names:
        doc = globs[name].__doc__
        found = extract(doc, name)
        ok = True
        for check in found.checks:
            row = _raw_row(check.source, globs)
            ok = ok and judge(check, row, project_flags)[0]
        verdicts[name] = ok
    return verdicts


@pytest.mark.parametrize(
    ("ini_flags", "project_flags"),
    [
        (None, PYTEST_DEFAULT_FLAGS),
        ("NORMALIZE_WHITESPACE", ("NORMALIZE_WHITESPACE",)),
        ("NUMBER IGNORE_EXCEPTION_DETAIL", ("NUMBER", "IGNORE_EXCEPTION_DETAIL")),
    ],
)
def test_doctest_verdicts_agree_with_pytest(tmp_path: Path, ini_flags, project_flags) -> None:
    source = _module(DOCTEST_CASES)
    expected = _pytest_verdicts(tmp_path, source, ini_flags)
    got = _judge_module(source, list(DOCTEST_CASES), project_flags)
    missing = set(DOCTEST_CASES) - set(expected) - {"skip"}  # all-skipped: no report line
    assert not missing
    disagree = {n: (got[n], expected[n]) for n in expected if got[n] != expected[n]}
    assert disagree == {}, "judge vs pytest (ours, pytest's)"
    assert {True, False} <= set(expected.values())


def _doctest(want: str, options=None, exc_msg=None) -> Check:
    return Check("doctest", "f(1)\n", want, 0, exc_msg=exc_msg, options=options or {})


def _call(expected: str) -> Check:
    return Check("call", "f(1)", expected, 0)


def row(out: str = "", exc: str | None = None, value: str | None = None) -> dict:
    return {"i": 0, "out": out, "exc": exc, "value": value}


def test_project_flags_apply_and_directives_override_them() -> None:
    check = _doctest("[0, ..., 9]\n")
    assert judge(check, row("[0, 1, 2, 9]\n"), ["ELLIPSIS"])[0]
    assert not judge(check, row("[0, 1, 2, 9]\n"), [])[0]
    off = _doctest("[0, ..., 9]\n", {"ELLIPSIS": False})
    assert not judge(off, row("[0, 1, 2, 9]\n"), ["ELLIPSIS"])[0]


def test_unknown_project_flag_names_are_ignored() -> None:
    assert judge(_doctest("1\n"), row("1\n"), ["NOT_A_FLAG", "ELLIPSIS"]) == (True, "1\n")


def test_an_exception_nobody_expected_fails_and_shows_it() -> None:
    ok, got = judge(_doctest("1\n"), row("partial\n", exc="KeyError: 'a'\n"))
    assert not ok
    assert got == "partial\nKeyError: 'a'\n"


@pytest.mark.parametrize(
    ("expected", "value", "ok"),
    [
        ("6", "6", True),
        ("6", "7", False),
        ('"abc"', "'abc'", True),  # quote style is no difference for a value
        ("('bcd', False)", "('bcd', False)", True),
        ("('bcd', False)", "['bcd', False]", False),  # a list is not the tuple written
        ("[1, 2]", "[1,2]", True),
        ("{'a': 1}", "{'a': 1}", True),
        ("0.33", "0.3333333333333333", True),  # truncated to the decimals written
        ("0.67", "0.6666666666666666", True),  # rounded
        ("0.6", "0.6666666666666666", True),  # truncated
        ("0.5", "0.6666666666666666", False),
        ("[1.5, 2.25]", "[1.5, 2.25]", True),
        ("2.0", "2", True),
        ("1", "True", True),  # Python's own equality, as before
        ("'1'", "1", False),
        ("None", "None", True),
        ("set()", "set()", True),  # not literals: the same text only
        ("None", "<object at 0x1>", False),
        ("1", "inf", False),
        ("1.5", "1" + "0" * 5000, False),  # an int too long for a float
        ("1.0" + "0" * 400, "1.0", True),
    ],
)
def test_call_values_compare_as_python_literals(expected: str, value: str, ok: bool) -> None:
    assert judge(_call(expected), row(value=value))[0] is ok


def test_call_that_raised_fails_with_the_exception() -> None:
    assert judge(_call("1"), row(exc="ValueError: no\n")) == (False, "ValueError: no")
    assert judge(_call("1"), row()) == (False, "(no value)")


def test_huge_and_deep_values_are_judged_quickly_and_shown_short() -> None:
    huge = "[" + ", ".join(["1"] * 400_000) + "]"
    deep = "[" * 100_000 + "]" * 100_000
    t0 = time.perf_counter()
    ok, got = judge(_call("[1, 1]"), row(value=huge))
    assert not ok and len(got) < GOT_CAP + 100
    assert not judge(_call("[[1]]"), row(value=deep))[0]
    assert not judge(_doctest("[...]\n", {"ELLIPSIS": True}), row(deep + "x\n"))[0]
    numbers = " ".join(["1.5"] * 200_000)
    assert not judge(_doctest(numbers + " 2\n", {"NUMBER": True}), row(numbers + "\n"))[0]
    assert time.perf_counter() - t0 < 5.0  # seconds, not minutes (loose: a shared machine)
