"""``phi-lsp bench --suite verify``: verification overhead per candidate.

Verifies a simple function with two docstring examples (one doctest, one informal)
many times and reports milliseconds per candidate, p50/p95:

- ``warm``: a started interpreter is waiting (the pool's spare), as when candidates
  come a keystroke apart; the goal is under 150 ms p50 on this machine;
- ``back_to_back``: candidates verified in a row (``prefer``/``require`` with K > 1),
  each after the previous one, so the spare is still starting;
- ``cold``: no pool at all (a fresh interpreter per candidate).

On a shared, noisy machine the ratios to a bare ``python -c pass`` start-up
(measured alongside) travel better than the milliseconds.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from typing import Any

CANDIDATE = '''
import math


def hypot(a, b):
    """Length of the hypotenuse.

    >>> hypot(3, 4)
    5.0
    hypot(5, 12) == 13.0
    """
    return math.sqrt(a * a + b * b)
'''


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return round(ordered[k], 1)


def _summary(values: list[float]) -> dict[str, float]:
    return {
        "p50_ms": _pct(values, 0.5),
        "p95_ms": _pct(values, 0.95),
        "mean_ms": round(statistics.fmean(values), 1),
        "n": len(values),
    }


def _bare_startup_ms(n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-I", "-S", "-c", "pass"], check=True)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    from phi_lsp.verify import sandbox, verify_function

    n = max(int(getattr(args, "runs", 3) or 3) * 10, 20)
    gap_s = 0.25  # a keystroke apart: time for the spare to start

    def once() -> float:
        t0 = time.perf_counter()
        r = verify_function(CANDIDATE, "hypot", timeout_s=5.0)
        ms = (time.perf_counter() - t0) * 1000
        if r.status != "passed":
            raise RuntimeError(f"the benchmark candidate did not pass: {r.reason}")
        return ms

    once()  # start the pool
    warm = []
    for _ in range(n):
        time.sleep(gap_s)
        warm.append(once())
    back_to_back = [once() for _ in range(n)]
    size = sandbox._POOL.size
    sandbox._POOL.size = 0
    sandbox.shutdown_pool()
    try:
        cold = [once() for _ in range(max(n // 2, 10))]
    finally:
        sandbox._POOL.size = size
    bare = _bare_startup_ms(max(n // 2, 10))
    bare_p50 = statistics.median(bare)
    warm_s = _summary(warm)
    return {
        "what": "verification overhead per candidate (2 examples), ms",
        "warm": warm_s,
        "back_to_back": _summary(back_to_back),
        "cold": _summary(cold),
        "bare_python_startup": _summary(bare),
        "warm_p50_over_bare_startup": round(warm_s["p50_ms"] / bare_p50, 2),
        "cold_p50_over_bare_startup": round(statistics.median(cold) / bare_p50, 2),
        "goal_warm_p50_ms": 150,
        "meets_goal": warm_s["p50_ms"] < 150,
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run(argparse.Namespace(runs=3))))
