"""Example extraction stays linear in the docstring's size, and its caps are reported.

Each crafted shape is a docstring an attacker (or an unlucky file) could write; today's
extractor once took minutes on some of them. The test doubles the size and checks that
the time about doubles (a ratio within one run, best of several, not an absolute time).
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

import pytest

from phi_lsp.verify.examples import (
    MAX_DOCSTRING_CHARS,
    MAX_EXAMPLE_CHARS,
    MAX_EXAMPLES,
    extract,
)

SIZE = 40_000  # characters; doubled once, still under MAX_DOCSTRING_CHARS


def _repeat(line: str) -> Callable[[int], str]:
    return lambda size: "Crafted.\n\n" + line * max(1, size // len(line))


def _one_example(head: str, unit: str, tail: str) -> Callable[[int], str]:
    return lambda size: "Crafted.\n\n" + head + unit * max(1, size // len(unit)) + tail


SHAPES: dict[str, Callable[[int], str]] = {
    "unclosed calls on long lines": _repeat("    " + "f(" * 1500 + "\n"),
    "a call then a chain of ==": _repeat("    f(1) " + "== 1 " * 700 + "\n"),
    "calls and == alternating": _repeat("    " + "f(1) == " * 450 + "\n"),
    "deeply nested brackets": _repeat("    f(" + "[" * 1500 + "]" * 1500 + ") == 1\n"),
    "many quotes": _repeat("    f(" + "'\"" * 1500 + ") == 1\n"),
    "unterminated strings": _repeat("    f('" + "a\\" * 1500 + ") == 1\n"),
    "spaces before a comment": _repeat("    f(1)" + " " * 3500 + "# returns\n"),
    "Example followed by spaces": _repeat("    Example" + " " * 3500 + "x\n"),
    "many >>> examples": _repeat("    >>> f(1)\n    1\n"),
    "one >>> with many ... lines": _one_example("    >>> f([1,\n", "    ... 2,\n", "    ... 3])\n"),
    "informal-looking want lines": _one_example("    >>> f(1)\n", "    f(2) == 3 + x\n", ""),
    "an Input: never closed": _one_example("    Input: [\n", "    1,\n", ""),
    "maths definitions": _repeat("    f(n) = n + 1\n"),
    "bindings with two markers": _repeat(
        "    For x = [" + "1," * 1000 + "] the output should be the output should be 1\n"
    ),
    "binding lines and steps": _repeat("    x = [1, 2]\n    -> sort x\n"),
    "another name's calls": _repeat("    g(" + "[1]," * 900 + ") => 1\n"),
    "examples past the cap": _repeat("    f(1) == 1\n"),
}


def _best_time(doc: str, runs: int = 5) -> float:
    """Best of ``runs``: the machine is shared, the minimum is the least disturbed."""
    best = float("inf")
    gc.disable()
    try:
        for _ in range(runs):
            t0 = time.perf_counter()
            extract(doc, "f", ["x"], 1)
            best = min(best, time.perf_counter() - t0)
    finally:
        gc.enable()
    return best


@pytest.mark.parametrize("shape", list(SHAPES))
def test_doubling_the_docstring_about_doubles_the_time(shape: str) -> None:
    small, large = SHAPES[shape](SIZE), SHAPES[shape](2 * SIZE)
    assert len(large) <= MAX_DOCSTRING_CHARS  # measured, not cut off by the cap
    _best_time(small, 1)  # warm-up (regex compilation, caches)
    ratios = []
    for _ in range(3):  # other processes share the CPU: a quadratic shape fails all three
        t_small, t_large = _best_time(small), _best_time(large)
        # Linear: about 2x; quadratic: 4x. Sub-millisecond runs are all noise.
        if t_large < max(3.0 * t_small, 0.005):
            return
        ratios.append(round(t_large / t_small, 2))
    pytest.fail(f"doubling the size multiplied the time by {ratios}")


def test_a_docstring_over_the_cap_is_skipped_with_a_reason() -> None:
    doc = "    f(1) == 1\n" * (MAX_DOCSTRING_CHARS // 10)
    result = extract(doc, "f")
    assert result.checks == []
    assert str(MAX_DOCSTRING_CHARS) in result.skipped[0].reason


def test_examples_past_the_cap_are_reported_not_run() -> None:
    doc = "".join(f"    f({i}) == {i}\n" for i in range(MAX_EXAMPLES + 7))
    result = extract(doc, "f")
    assert len(result.checks) == MAX_EXAMPLES
    assert result.checks[-1].source == f"f({MAX_EXAMPLES - 1})"
    assert any("7 more examples" in s.reason for s in result.skipped)


def test_an_example_longer_than_the_cap_is_skipped_with_a_reason() -> None:
    long_list = "[" + "1, " * (MAX_EXAMPLE_CHARS // 3) + "1]"
    result = extract(f"    f({long_list}) == 1\n    f(2) == 2\n", "f")
    assert [c.source for c in result.checks] == ["f(2)"]
    assert "characters long" in result.skipped[0].reason


def test_a_spent_deadline_runs_nothing_and_says_so() -> None:
    result = extract("    f(1) == 1\n", "f", deadline=time.monotonic() - 1)
    assert result.checks == []
    assert "time budget" in result.skipped[0].reason
    assert extract("    f(1) == 1\n", "f", deadline=time.monotonic() + 60).checks
