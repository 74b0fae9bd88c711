"""What verification may do in this session, and with which interpreter.

- Isolation (issue 13 item 5): where the sandbox cannot isolate examples (no
  bubblewrap, no user namespaces), the server runs none unless the user set
  ``verifyUnisolated``; it says so once. Suggestions then come unverified.
- The project's interpreter (issue 12 item 1): ``pythonPath`` and the LSP workspace
  folders go into verification (``verify/project.py`` picks the interpreter: the
  setting, ``VIRTUAL_ENV``, a ``.venv``/``venv`` at the project root, phi-lsp's own);
  ``phiLsp/status`` carries which one and why (``python``, ``pythonReason``).

Both answers need a subprocess the first time, so they are found on a thread.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import TYPE_CHECKING

from lsprotocol import types
from pygls.uris import to_fs_path

import phi_lsp.verify  # noqa: F401 - see below
from phi_lsp.settings import Settings

# phi_lsp.verify is imported here, on the main thread while the server is built, not first
# from the executor: its package __init__ and its submodules import each other, and two
# threads importing them for the first time at once can see a partially initialised module
# (ImportError: cannot import name 'Limits' from partially initialized module ...).

if TYPE_CHECKING:
    from phi_lsp.server.app import PhiLanguageServer

log = logging.getLogger("phi_lsp.server")

NOT_ISOLATED = (
    "phi-lsp: examples are not run: this machine cannot isolate them (no bubblewrap, no "
    "user namespaces). Set phiLsp.verifyUnisolated to true to run them anyway, unisolated."
)


@dataclasses.dataclass(frozen=True)
class Interpreter:
    """The interpreter examples run with, why it was chosen, or why it cannot be used."""

    python: str
    reason: str
    error: str = ""

    def to_wire(self) -> dict[str, str]:
        return {"python": self.python, "pythonReason": self.reason}


class Verification:
    def __init__(self) -> None:
        self._isolated: bool | None = None  # None: not asked yet
        self._told_not_isolated = False
        self._told_error = ""
        self.interpreter: Interpreter | None = None

    @staticmethod
    def workspace_roots(ls: PhiLanguageServer) -> tuple[str, ...]:
        """The editor's workspace folders as paths (pygls keeps them up to date)."""
        try:
            ws = ls.workspace
        except RuntimeError:  # before initialize
            return ()
        uris = [f.uri for f in ws.folders.values()] or ([ws.root_uri] if ws.root_uri else [])
        return tuple(p for p in (to_fs_path(u) for u in uris) if p)

    async def may_run(
        self, ls: PhiLanguageServer, settings: Settings, *, asked: bool = False
    ) -> bool:
        """Whether examples may run here. A refusal is told to the user the first time,
        or every time they ``asked`` (the verify command)."""
        if settings.verify_unisolated:
            return True
        if self._isolated is None:
            from phi_lsp.verify.sandbox import isolation_available

            loop = asyncio.get_running_loop()
            self._isolated = await loop.run_in_executor(ls.pool, isolation_available)
            if not self._isolated:
                log.warning("verification cannot be isolated here")
        if not self._isolated and (asked or not self._told_not_isolated):
            self._told_not_isolated = True
            ls.show(types.MessageType.Warning, NOT_ISOLATED)
        return self._isolated

    async def refresh(self, ls: PhiLanguageServer) -> None:
        """Find the interpreter for the workspace again and tell the client."""
        python = ls.settings.python_path or None
        roots = self.workspace_roots(ls)
        loop = asyncio.get_running_loop()
        found = await loop.run_in_executor(ls.pool, _resolve, python, roots)
        if found == self.interpreter:
            return
        self.interpreter = found
        if found.error:
            log.warning("%s", found.error)
            if found.error != self._told_error:
                self._told_error = found.error
                ls.show(
                    types.MessageType.Warning,
                    f"phi-lsp: {found.error}; examples cannot run until it is fixed "
                    "(phiLsp.pythonPath).",
                )
        else:
            log.info("examples run with %s (%s)", found.python, found.reason)
        ls.send_status()


def _resolve(python: str | None, roots: tuple[str, ...]) -> Interpreter:
    """On a thread: the interpreter of the workspace (its single root, if one)."""
    from phi_lsp.verify.project import ProjectError, resolve

    try:
        project = resolve(None, python=python, workspace_roots=roots)
    except ProjectError as e:
        return Interpreter(python or "", "--python/pythonPath" if python else "", str(e))
    except Exception as e:  # a probe that broke in an unexpected way: say it, go on
        return Interpreter(python or "", "", f"cannot use the interpreter: {e}")
    return Interpreter(project.python, project.python_reason)
