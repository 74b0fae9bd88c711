"""The statistics every bench reports: percentiles, summaries, ratios. One definition,
so a p95 in one suite means the same as in another."""

from __future__ import annotations

import statistics
from collections.abc import Sequence


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank ``q`` quantile (0 <= q <= 1) of ``values``; 0.0 when there are none.
    With few runs a p95 is close to the maximum."""
    if not values:
        return 0.0
    xs = sorted(values)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def p50(values: Sequence[float], digits: int = 2) -> float:
    """The median (of the middle two, their mean), rounded."""
    return round(statistics.median(values), digits) if values else 0.0


def p95(values: Sequence[float], digits: int = 2) -> float:
    return round(percentile(values, 0.95), digits)


def summary(values: Sequence[float], digits: int = 3) -> dict[str, float]:
    """``{"p50_ms", "p95_ms", "mean_ms", "n"}`` of timings in milliseconds."""
    return {
        "p50_ms": p50(values, digits),
        "p95_ms": p95(values, digits),
        "mean_ms": round(statistics.fmean(values), digits) if values else 0.0,
        "n": len(values),
    }


def ratio(a: float, b: float, digits: int = 4) -> float | None:
    """``a / b`` rounded; None when ``b`` is 0 (nothing to compare with)."""
    return round(a / b, digits) if b else None
