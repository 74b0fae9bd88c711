"""``phi-lsp bench``: speed figures as one JSON object on stdout.

Suites: ``engine`` (here, via ``model_runtime.bench``) and ``pipeline`` / ``server`` /
``verify``, each a module ``phi_lsp.bench_suites.<name>`` with ``run(args) -> dict``,
imported only when asked for. Progress and errors go to stderr.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from typing import Any

SUITES = ("engine", "pipeline", "server", "verify")


def run_bench(args: argparse.Namespace) -> int:
    """0: every requested suite produced figures; 1: one failed; 2: bad usage."""
    suite = getattr(args, "suite", "engine")
    if suite != "all" and suite not in SUITES:
        print(
            f"phi-lsp bench: unknown suite {suite!r}; choose one of {', '.join(SUITES)}, all",
            file=sys.stderr,
        )
        return 2
    names = SUITES if suite == "all" else (suite,)
    results = {name: _run_suite(name, args) for name in names}
    if suite == "all":
        out: dict[str, Any] = {"suite": "all", **results}
        # A suite nobody has written yet does not fail "all"; a broken one does.
        failed = any("error" in r and r["error"] != "suite not available" for r in results.values())
    else:
        out = {"suite": suite, **results[suite]}
        failed = "error" in results[suite]
    print(json.dumps(out), flush=True)
    return 1 if failed else 0


def _run_suite(name: str, args: argparse.Namespace) -> dict[str, Any]:
    print(f"phi-lsp bench: running suite {name!r}", file=sys.stderr)
    try:
        if name == "engine":
            from model_runtime.bench import run_engine_suite

            return run_engine_suite(args)
        module_name = f"phi_lsp.bench_suites.{name}"
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if e.name in (module_name, "phi_lsp.bench_suites"):
                return {"error": "suite not available"}
            raise
        return dict(module.run(args))
    except Exception as e:  # noqa: BLE001 - one JSON object, whatever failed
        print(f"phi-lsp bench: suite {name!r} failed: {type(e).__name__}: {e}", file=sys.stderr)
        return {"error": f"{type(e).__name__}: {e}"}
