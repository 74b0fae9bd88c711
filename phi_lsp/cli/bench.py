"""``phi-lsp bench``: speed figures as one JSON object (``phi_lsp.bench`` runs them)."""

from __future__ import annotations

import argparse

from phi_lsp.cli.errors import UsageError
from phi_lsp.cli.flags import add_model_flags

NAME = "bench"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from phi_lsp.bench import SUITES

    b = sub.add_parser(NAME, help="speed figures as one JSON object")
    add_model_flags(b, default_model="random:phi-1?layers=4")
    b.add_argument("--suite", default="engine", help=" | ".join((*SUITES, "all")))
    b.add_argument("--prompt-tokens", type=int, default=1000)
    b.add_argument("--new-tokens", type=int, default=16)
    b.add_argument("--runs", type=int, default=3)
    b.add_argument("--json", action="store_true", help="(always on) one JSON object on stdout")


def run(args: argparse.Namespace) -> int:
    from phi_lsp.bench import SUITES, run_bench

    if args.suite != "all" and args.suite not in SUITES:
        raise UsageError(f"unknown suite {args.suite!r}; choose one of {', '.join(SUITES)}, all")
    return run_bench(args)
