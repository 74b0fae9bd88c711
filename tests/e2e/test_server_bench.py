"""`phi-lsp bench --suite server` runs the real server and prints one JSON object."""

from __future__ import annotations

import json
import math
import subprocess
import sys


def test_server_bench_prints_one_json_object_with_its_figures() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "phi_lsp", "bench", "--suite", "server", "--runs", "1"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)  # exactly one JSON object on stdout
    assert out["suite"] == "server" and out["file_lines"] >= 4900
    assert out["overhead"]["n"] == 20
    typed = out["typed_ahead"]
    # Every typed-ahead answer continued the suggestion and came from the cache.
    assert typed["n"] == typed["cache_hits"] > 0
    for figure in (out["overhead"], out["round_trip"], typed, out["bare_round_trip"]):
        assert math.isfinite(figure["p50_ms"]) and figure["p95_ms"] >= figure["p50_ms"] > 0
