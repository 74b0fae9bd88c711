"""``phi-lsp verify FILE``: the argparse wiring; the command itself is
``phi_lsp.verify.cli.run_verify`` (owned with the verifier)."""

from __future__ import annotations

import argparse

NAME = "verify"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    v = sub.add_parser(NAME, help="run each function's docstring examples against the code")
    v.add_argument("file")
    v.add_argument("--function", metavar="NAME")
    v.add_argument("--json", action="store_true")
    v.add_argument("--timeout-ms", type=int, default=3000)
    v.add_argument(
        "--python",
        default=None,
        metavar="PATH",
        help="the project's interpreter (default: $VIRTUAL_ENV, ./.venv, ./venv, phi-lsp's own)",
    )


def run(args: argparse.Namespace) -> int:
    from phi_lsp.verify.cli import run_verify

    return run_verify(args)
