"""Docstring example extraction: what becomes a check, what is skipped and why."""

from __future__ import annotations

import pytest

from phi_lsp.verify.examples import extract


def calls(doc: str, name: str = "f", params=None, required=None) -> list[tuple[str, str]]:
    return [(c.source, c.expected) for c in extract(doc, name, params, required).checks]


def test_doctest_multiline_source_and_want() -> None:
    doc = """Sum.

    >>> total = f([1,
    ...            2])
    >>> total
    3
    >>> print("a\\nb")
    a
    b
    """
    checks = extract(doc, "f").checks
    assert [c.kind for c in checks] == ["doctest"] * 3
    assert checks[0].source == "total = f([1,\n           2])\n"
    assert checks[2].expected == "a\nb\n"
    assert [c.line for c in checks] == [2, 4, 6]


def test_doctest_directives_and_expected_exception() -> None:
    doc = """
    >>> f(1)  # doctest: +ELLIPSIS
    [0, ..., 9]
    >>> f(-1)
    Traceback (most recent call last):
      ...
    ValueError: negative
    """
    ellipsis, boom = extract(doc, "f").checks
    assert ellipsis.options == {"ELLIPSIS": True}
    assert boom.exc_msg == "ValueError: negative\n"


def test_doctest_skip_directive_is_skipped_not_passed() -> None:
    result = extract("    >>> f(1)  # doctest: +SKIP\n    99\n", "f")
    assert result.checks == []
    assert "SKIP" in result.skipped[0].reason


def test_informal_example_right_after_doctest_output_is_its_own_check() -> None:
    doc = "    >>> f(1)\n    2\n    f(2) == 4\n"
    checks = extract(doc, "f").checks
    assert [(c.kind, c.expected) for c in checks] == [("doctest", "2\n"), ("call", "4")]


def test_doctest_comparison_without_output_means_true() -> None:
    (check,) = extract("    >>> f([]) == 0\n", "f").checks
    assert check.expected == "True\n"


@pytest.mark.parametrize(
    "line",
    [
        "f(2) == 4",
        "f(2) -> 4",
        "f(2) => 4",
        "f(2) ==> 4",
        "f(2) ➞ 4",
        "f(2) returns 4",
        "f(2) should return 4.",
        "f(2) = 4",
        "f(2)   # returns 4",
        "* f(2) => 4",
        "Example: f(2) == 4",
        "assert f(2) == 4",
    ],
)
def test_informal_styles(line: str) -> None:
    assert calls(f"Doubles.\n\n    {line}\n") == [("f(2)", "4")]


def test_separator_inside_a_string_argument_is_not_a_split() -> None:
    assert calls('    f("a -> b") -> "b"\n') == [('f("a -> b")', '"b"')]


def test_call_written_over_several_lines_is_joined() -> None:
    doc = "    f([\n        [1, 2],\n        [3]\n    ]) == 3\n"
    assert calls(doc) == [("f([ [1, 2], [3] ])", "3")]


def test_input_output_pairs() -> None:
    doc = """
    Example 1:
        Input: arr = [1, 2], k = 1
        Output: [2]
    Example 2:
        Input: [4,2,3]
        Output: 24 # a comment
    """
    got = calls(doc, "g", params=["arr", "k"], required=1)
    assert got == [("g(arr = [1, 2], k = 1)", "[2]"), ("g([4,2,3])", "24")]


def test_true_written_in_lower_case() -> None:
    assert calls("    f(1) => true\n") == [("f(1)", "True")]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("f(a) => False", "not Python literals"),
        ("f(1) -> 19 - 5 - 6 = 9", "does not give the result"),
        ("f(1) -> 19 - x = 8", "not a Python literal"),
        ('f(1) ==> ("Venus")', "ambiguous"),
        ("f(1)", "no result"),
    ],
)
def test_unsure_examples_are_skipped_with_a_reason(line: str, reason: str) -> None:
    result = extract(f"    {line}\n", "f")
    assert result.checks == []
    assert reason in result.skipped[0].reason


def test_other_functions_and_prose_are_not_checks() -> None:
    doc = """Like g(1) == 2 but faster; returns 4 for most inputs.

    g(1) == 2
    """
    assert calls(doc) == []


def test_maths_definition_with_equals_is_not_an_example() -> None:
    doc = """
    tri(1) = 3
    tri(n) = 1 + n / 2, if n is even.
    tri(3) = [1, 3, 2, 8]
    """
    result = extract(doc, "tri")
    assert result.checks == []
    assert all("definition" in s.reason for s in result.skipped if s.text.startswith("tri(1)"))


def test_arguments_that_cannot_bind_are_skipped() -> None:
    doc = "    Input: [1, 2], [3]\n    Output: 3\n"
    assert calls(doc, params=["xs"], required=1) == []


def test_method_informal_examples_are_skipped_doctests_kept() -> None:
    doc = "    >>> A().m(1)\n    2\n\n    m(1) == 2\n"
    result = extract(doc, "A.m")
    assert [c.kind for c in result.checks] == ["doctest"]
    assert "method" in result.skipped[0].reason
