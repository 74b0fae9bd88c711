"""Host-side bounds of `verify_function`/`verify_source` (issue 13 item 4), the module's
own names reaching extraction, and pytest's default doctest flags for a file outside
any project. Real sandbox runs where something runs; nothing is faked.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from phi_lsp.verify import MAX_FUNCTIONS_PER_FILE, verify_function, verify_source
from phi_lsp.verify.cli import run_verify
from phi_lsp.verify.compare import PYTEST_DEFAULT_FLAGS
from phi_lsp.verify.project import resolve

RENAMED = '''
def next_one(x):
    """One more than x.

    grade(1) ==> 2
    grade(4) ==> 5
    """
    return x + 1
'''

HELPER = """

def grade(x):
    return 2 * x
"""


def test_an_example_under_another_name_is_read_unless_the_module_defines_that_name() -> None:
    # Not defined anywhere: the function was renamed after its docstring was written.
    r = verify_function(RENAMED, "next_one")
    assert (r.status, r.passed) == ("passed", 2)
    # The module defines grade: those lines are grade's examples, not next_one's.
    r = verify_function(RENAMED + HELPER, "next_one")
    assert r.status == "no-examples"
    assert r.passed == r.failed == 0


def test_a_spent_deadline_reaches_extraction_and_runs_nothing() -> None:
    assert verify_function(RENAMED, "next_one").sandbox  # a run reports its sandbox
    r = verify_function(RENAMED, "next_one", deadline=time.monotonic() - 1)
    assert r.status == "timeout"
    assert r.results == []
    assert any("time budget" in s["reason"] for s in r.skipped)  # extract's own reason
    assert r.sandbox == {}  # no sandbox was started


def _many(n: int) -> str:
    return "".join(
        f'def f{i}(x):\n    """\n    >>> f{i}(1)\n    1\n    """\n    return x\n\n'
        for i in range(n)
    )


def test_functions_past_the_cap_are_reported_skipped_with_the_way_to_check_one() -> None:
    reports = verify_source(_many(3), max_functions=2)
    assert [(r.name, r.result.status) for r in reports] == [
        ("f0", "passed"),
        ("f1", "passed"),
        ("f2", "skipped"),
    ]
    assert "--function f2" in reports[2].result.reason
    # Asked by name, a function past the cap is checked.
    [only] = verify_source(_many(3), "f2", max_functions=2)
    assert only.result.status == "passed"


def test_past_the_file_deadline_the_rest_is_timeout_without_running() -> None:
    reports = verify_source(_many(3), deadline=time.monotonic() - 1)
    assert [r.result.status for r in reports] == ["timeout"] * 3
    assert all(r.result.results == [] for r in reports)
    assert "time budget" in reports[0].result.reason


ELLIPSIS_DOC = '''
def digits():
    """
    >>> digits()
    [0, 1, ..., 9]
    """
    return list(range(10))
'''


def test_a_standalone_file_gets_pytests_default_ellipsis(tmp_path: Path) -> None:
    # No pyproject/setup.cfg/pytest.ini/.git anywhere up to tmp_path: no config at all.
    path = tmp_path / "loose.py"
    path.write_text(ELLIPSIS_DOC)
    assert resolve(path).optionflags == PYTEST_DEFAULT_FLAGS
    assert resolve(None).optionflags == PYTEST_DEFAULT_FLAGS  # an unsaved buffer
    assert verify_function(ELLIPSIS_DOC, "digits", path=str(path)).status == "passed"
    assert verify_function(ELLIPSIS_DOC, "digits").status == "passed"


def test_the_cli_prints_a_skipped_function_with_its_reason(tmp_path: Path, capsys) -> None:
    # MAX_FUNCTIONS_PER_FILE functions without docstrings (nothing to run), then one more.
    n = MAX_FUNCTIONS_PER_FILE
    path = tmp_path / "many.py"
    path.write_text("".join(f"def g{i}():\n    pass\n" for i in range(n)) + _many(1))
    args = argparse.Namespace(file=str(path), function=None, json=False, timeout_ms=3000)
    assert run_verify(args) == 0  # skipped is no failure
    out = capsys.readouterr().out
    assert f"many.py:{2 * n + 1}: f0: skipped (not verified: only the first {n} functions" in out


def test_run_checks_without_a_project_uses_pytests_default_ellipsis() -> None:
    from phi_lsp.verify.examples import extract
    from phi_lsp.verify.sandbox import run_checks

    checks = extract("\n    >>> digits()\n    [0, 1, ..., 9]\n    ", "digits").checks
    assert run_checks(ELLIPSIS_DOC, "digits", checks).status == "passed"
