"""The one error type of the ``phi-lsp`` command, and how it reaches the user.

A command raises ``UsageError`` for bad input (missing file, bad flag value, a target
that names no function); ``phi_lsp.cli.main`` prints it as one line and exits 2.
"""

from __future__ import annotations

import sys

EXIT_USAGE = 2  # bad input: nothing was done
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit code 2."""


def report(command: str, message: object) -> None:
    """One line on stderr, prefixed with the command (``phi-lsp complete: ...``)."""
    print(f"phi-lsp {command}: {message}", file=sys.stderr)
