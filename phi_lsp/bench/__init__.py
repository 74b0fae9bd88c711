"""Speed figures (``phi-lsp bench``), one JSON object on stdout.

Suites, each a module here with ``run(args) -> dict``, imported only when asked for:
``engine`` (the model runtime's loop: cold/warm, prefill/decode, speculation),
``pipeline`` (what the editor pipeline costs around the model), ``server`` (the real
server over stdio), ``verify`` (the sandboxed docstring check). ``stats`` holds the
percentiles they all report. Progress and errors go to stderr.

Scripts that need more than this process (editors, llama.cpp, HumanEval) are in
``benchmarks/`` at the repository root.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from typing import Any

SUITES = ("engine", "pipeline", "server", "verify")


def run_bench(args: argparse.Namespace) -> int:
    """0: every requested suite produced figures; 1: one failed. An unknown suite is a
    ValueError (the CLI checks first)."""
    suite = getattr(args, "suite", "engine")
    if suite != "all" and suite not in SUITES:
        raise ValueError(f"unknown suite {suite!r}; choose one of {', '.join(SUITES)}, all")
    names = SUITES if suite == "all" else (suite,)
    results = {name: _run_suite(name, args) for name in names}
    if suite == "all":
        out: dict[str, Any] = {"suite": "all", **results}
    else:
        out = {"suite": suite, **results[suite]}
    print(json.dumps(out), flush=True)
    return 1 if any("error" in r for r in results.values()) else 0


def _run_suite(name: str, args: argparse.Namespace) -> dict[str, Any]:
    print(f"phi-lsp bench: running suite {name!r}", file=sys.stderr)
    try:
        module = importlib.import_module(f"phi_lsp.bench.{name}")
        return dict(module.run(args))
    except Exception as e:  # noqa: BLE001 - one JSON object, whatever failed
        print(f"phi-lsp bench: suite {name!r} failed: {type(e).__name__}: {e}", file=sys.stderr)
        return {"error": f"{type(e).__name__}: {e}"}
