"""Example extraction stays linear in the docstring's size, and its caps are reported.

Each crafted shape is a docstring an attacker (or an unlucky file) could write; today's
extractor once took minutes on some of them. The test doubles the size and checks that
the time about doubles (a ratio within one run, best of several, not an absolute time).
"""

from __future__ import annotations

import gc
import math
import sys
import time
from pathlib import Path

import pytest

from phi_lsp.verify.examples import (
    MAX_CANDIDATES,
    MAX_DOCSTRING_CHARS,
    MAX_EXAMPLE_CHARS,
    MAX_EXAMPLES,
    extract,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from extraction_bounds import SHAPES  # noqa: E402

SIZE = 40_000  # characters; doubled once, still under MAX_DOCSTRING_CHARS


def _best_time(doc: str, repeat: int, runs: int = 5) -> float:
    """Best of ``runs`` timings of ``repeat`` extractions: the machine is shared, the
    minimum is the least disturbed, and repeating keeps each timing above the jitter."""
    best = float("inf")
    gc.disable()
    try:
        for _ in range(runs):
            t0 = time.perf_counter()
            for _ in range(repeat):
                extract(doc, "f", ["x"], 1)
            best = min(best, time.perf_counter() - t0)
    finally:
        gc.enable()
    return best


@pytest.mark.parametrize("shape", list(SHAPES))
def test_doubling_the_docstring_about_doubles_the_time(shape: str) -> None:
    small, large = SHAPES[shape](SIZE), SHAPES[shape](2 * SIZE)
    assert len(large) <= MAX_DOCSTRING_CHARS  # measured, not cut off by the cap
    once = _best_time(small, 1, runs=1)  # also a warm-up (regex compilation, caches)
    repeat = max(1, math.ceil(0.03 / max(once, 1e-6)))  # >= 30 ms a timing
    ratios = []
    for _ in range(5):  # other processes share the CPU: a quadratic shape fails all five
        t_small, t_large = _best_time(small, repeat), _best_time(large, repeat)
        if t_large < 3.0 * t_small:  # linear: about 2x; quadratic: 4x
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


def test_past_the_cap_of_doctest_examples_the_rest_is_reported() -> None:
    doc = "".join(f"    >>> f({i})\n    {i}\n" for i in range(MAX_CANDIDATES + 50))
    result = extract(doc, "f")
    assert len(result.checks) == MAX_EXAMPLES
    assert any(">>> examples" in s.reason for s in result.skipped)
