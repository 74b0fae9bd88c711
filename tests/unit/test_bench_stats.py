"""The one definition of p50/p95 every bench reports."""

from __future__ import annotations

from phi_lsp.bench import stats


def test_p95_of_twenty_runs_is_the_nineteenth_not_the_slowest() -> None:
    runs = [float(i) for i in range(1, 21)]  # 1..20 ms
    assert stats.p95(runs) == 19.0
    assert stats.percentile(runs, 1.0) == 20.0 and stats.percentile(runs, 0.0) == 1.0


def test_p50_is_the_median_and_order_does_not_matter() -> None:
    assert stats.p50([3.0, 1.0, 2.0, 10.0]) == 2.5
    assert stats.summary([5.0, 1.0, 3.0]) == {"p50_ms": 3.0, "p95_ms": 5.0, "mean_ms": 3.0, "n": 3}


def test_nothing_measured_gives_zeros_and_no_ratio() -> None:
    assert stats.summary([]) == {"p50_ms": 0.0, "p95_ms": 0.0, "mean_ms": 0.0, "n": 0}
    assert stats.ratio(1.0, 0.0) is None
    assert stats.ratio(1.0, 3.0) == 0.3333
