"""The ``phi-lsp`` command: one module per subcommand, each with ``add_parser(sub)``
and ``run(args) -> exit code``; bad input is a ``UsageError`` (``errors.py``), printed
here as one line with exit code 2.

Nothing heavy is imported at module level: ``phi-lsp --help`` must not load torch.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from phi_lsp import __version__
from phi_lsp.cli import bench, complete, model, serve, verify
from phi_lsp.cli.errors import EXIT_INTERRUPTED, EXIT_USAGE, UsageError, report

__all__ = ["COMMANDS", "UsageError", "build_parser", "main"]

COMMANDS = {m.NAME: m for m in (serve, complete, verify, model, bench)}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="phi-lsp",
        description="Local Python code completion with Phi-1: a language server (default: "
        "--stdio), a headless completer and a docstring-example verifier.",
    )
    parser.add_argument("--version", action="version", version=f"phi-lsp {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS.values():
        command.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # `phi-lsp`, `phi-lsp --stdio`, `phi-lsp --tcp --port N`: the server.
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version")):
        argv = ["serve", *argv]
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command].run(args)
    except UsageError as e:
        report(args.command, e)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
