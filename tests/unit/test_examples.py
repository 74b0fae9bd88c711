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


# --- parameters bound by name, worked arithmetic, a former name (issue 12 item 5) ---------


@pytest.mark.parametrize(
    ("line", "call", "expected"),
    [
        ("For lst = [1,2,3] the output should be 6", "f([1,2,3])", "6"),
        ("For lst = [] the output should be 0.", "f([])", "0"),
        (
            "For lst = [1], k = \"ae\", the result should be ('bcd',False)",
            'f([1], "ae")',
            "('bcd',False)",
        ),
        ('For lst = [1], k = "b"  the result should be 2', 'f([1], "b")', "2"),
        ("For k = 2, lst = [5] the answer is 7", "f([5], 2)", "7"),
        ("For lst = [2], after doubling twice, the output should be 8", "f([2])", "8"),
        ("For lst = [2] the function should return 8", "f([2])", "8"),
    ],
)
def test_parameters_bound_by_name(line: str, call: str, expected: str) -> None:
    assert calls(f"    {line}\n", params=["lst", "k"], required=1) == [(call, expected)]


def test_only_keyword_binding_when_not_a_prefix_of_the_signature() -> None:
    got = calls("    For k = 3 the output should be 1\n", params=["lst", "k"], required=0)
    assert got == [("f(k=3)", "1")]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("For n = 3 the output should be 6", "not all parameters"),  # no parameter n
        ("For k = 3 the output should be 6", "required"),  # lst is required
        ("For lst = [1] the output should be x", "not a Python literal"),
        ("For lst = [1] the output should be 1, the result is 2", "more than one"),
    ],
)
def test_bound_parameters_that_do_not_fit_are_skipped(line: str, reason: str) -> None:
    result = extract(f"    {line}\n", "f", ["lst", "k"], 1)
    assert result.checks == []
    assert reason in result.skipped[0].reason


def test_bound_parameters_need_the_signature() -> None:
    result = extract("    For lst = [1] the output should be 1\n", "f")
    assert result.checks == []
    assert "signature" in result.skipped[0].reason


def test_a_binding_line_then_its_return_line() -> None:
    doc = """
      arr = [2, 1, 3]
            -> sort arr -> [1, 2, 3]
      return [3, 2, 1]

      arr = []
      return []

      arr = [1, -1]
      return = [1]
    """
    assert calls(doc, params=["arr"], required=1) == [
        ("f([2, 1, 3])", "[3, 2, 1]"),
        ("f([])", "[]"),
        ("f([1, -1])", "[1]"),
    ]


def test_a_binding_line_without_a_return_line_is_no_example() -> None:
    doc = "    arr = [2, 1, 3]\n    is sorted in place\n"
    assert calls(doc, params=["arr"], required=1) == []
    assert calls("    x = [2]\n    return [2]\n", params=["arr"], required=1) == []


def test_worked_arithmetic_gives_the_result() -> None:
    doc = '    f("5 apples", 19) ->19 - 5 - 6 = 8\n    f(2) -> 2 * (3 + 1) / 4 = 2.0\n'
    assert calls(doc) == [('f("5 apples", 19)', "8"), ("f(2)", "2.0")]


def test_worked_arithmetic_cannot_make_the_host_compute_much() -> None:
    result = extract("    f(1) -> " + " + ".join(["9" * 12] * 200) + " = 1\n", "f")
    assert result.checks == []
    big = extract("    f(1) -> 10 ** 10 ** 10 = 1\n", "f")
    assert big.checks == []


def test_examples_under_a_former_name() -> None:
    doc = """Grades.

    Example:
    grade_equation([4.0, 3]) ==> ['A+', 'B']
    assert grade_equation([1.0]) => ['D']
    """
    got = calls(doc, name="letter_grade", params=["grades"], required=1)
    assert got == [("letter_grade([4.0, 3])", "['A+', 'B']"), ("letter_grade([1.0])", "['D']")]


@pytest.mark.parametrize(
    "doc",
    [
        "    helper([1]) ==> 2\n    f(1) is like it\n",  # the function's own name is used
        "    helper([1]) ==> 2\n    other([1]) ==> 3\n",  # two other names
        "    sorted([2, 1]) ==> [1, 2]\n",  # a builtin
        "    helper([1]) ==> 2\n    helper(x) is slow\n",  # used in prose too
        "    helper([1]) ==> 2\n    helper([2]) ==> ???\n",  # not every line reads
        "    helper([1], 2, 3) ==> 2\n",  # does not bind to f(xs)
    ],
)
def test_another_name_is_read_only_when_unambiguous(doc: str) -> None:
    assert calls(doc, params=["xs"], required=1) == []


def test_a_name_the_module_defines_is_never_taken_for_this_function() -> None:
    doc = "    helper([1]) ==> 2\n"
    assert calls(doc, params=["xs"], required=1)
    result = extract(doc, "f", ["xs"], 1, module_names={"helper", "f"})
    assert result.checks == []
