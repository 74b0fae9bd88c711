"""phi-lsp: local Python code completion with Phi-1, with docstring-verified suggestions.

Scripts use ``complete_source`` and ``verify_source`` (see ``phi_lsp.api``); they
load lazily so that ``import phi_lsp`` stays cheap.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "complete_source", "complete_file", "verify_source"]


def __getattr__(name: str) -> object:
    if name in ("complete_source", "complete_file", "verify_source"):
        from phi_lsp import api

        return getattr(api, name)
    raise AttributeError(name)
