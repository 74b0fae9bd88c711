"""``phiLsp.verifyFunction [uri, {line, character}]``: run the examples of the function
at a position and tell the user (reply + ``window/showMessage``).

The work (finding the function, extracting examples, the sandbox) runs on a thread
with a time budget, never on the event loop.
"""

from __future__ import annotations

import ast
import asyncio
import dataclasses
import logging
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, TypedDict

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams
from pygls.uris import to_fs_path

from phi_lsp import functions
from phi_lsp.documents import Document
from phi_lsp.server.verification import NOT_ISOLATED

if TYPE_CHECKING:
    from phi_lsp.server.app import PhiLanguageServer
    from phi_lsp.verify import VerifyResult

log = logging.getLogger("phi_lsp.server.verify")

VERIFY_COMMAND = "phiLsp.verifyFunction"
BUDGET_MARGIN_S = 2.0  # past the examples' own timeout: extraction, the sandbox's start


class ExampleRow(TypedDict, total=False):
    source: str
    expected: str
    got: str
    ok: bool


class VerifyReply(TypedDict):
    status: str
    passed: int
    failed: int
    results: list[ExampleRow]
    reason: str


def error_reply(reason: str, status: str = "error") -> VerifyReply:
    return {"status": status, "passed": 0, "failed": 0, "results": [], "reason": reason}


def parse_args(args: object) -> tuple[str, tuple[int, int]]:
    usage = f"{VERIFY_COMMAND} takes [uri, {{line, character}}]"
    if not isinstance(args, (list, tuple)) or len(args) != 2 or not isinstance(args[0], str):
        raise JsonRpcInvalidParams(usage)
    pos = args[1]
    if isinstance(pos, dict):
        line, ch = pos.get("line"), pos.get("character", 0)
    else:
        line, ch = getattr(pos, "line", None), getattr(pos, "character", 0)
    if not isinstance(line, int) or not isinstance(ch, int) or line < 0 or ch < 0:
        raise JsonRpcInvalidParams(usage)
    return args[0], (line, ch)


def function_at(source: str | Document, line: int) -> tuple[str | None, int, str]:
    """(name, 1-based def line, why not) of the function around 0-based ``line``
    (``functions.runnable_at``: a top-level function or ``Class.method``; inside a nested
    function, the enclosing one, since a nested one cannot run on its own)."""
    doc = Document(source) if isinstance(source, str) else source
    if functions.syntax_error_line(doc) is not None:
        # Python, not tree-sitter, says whether the file can run (and where it breaks).
        try:
            ast.parse(doc.text)
        except (SyntaxError, ValueError) as e:
            lineno = getattr(e, "lineno", None)
            where = f" at line {lineno}" if lineno else ""
            return None, 0, f"cannot verify: the file does not parse{where}; fix that first"
    fn = functions.runnable_at(doc, line)
    if fn is None:
        return None, 0, f"no function at line {line + 1}"
    return fn.qualname, fn.def_line + 1, ""


def reply_of(result: VerifyResult) -> VerifyReply:
    rows: list[ExampleRow] = []
    for r in result.results:
        row: ExampleRow = {}
        if "source" in r:
            row["source"] = str(r["source"])
        if "expected" in r:
            row["expected"] = str(r["expected"])
        if "got" in r:
            row["got"] = str(r["got"])
        if "ok" in r:
            row["ok"] = bool(r["ok"])
        rows.append(row)
    return {
        "status": result.status,
        "passed": int(result.passed),
        "failed": int(result.failed),
        "results": rows,
        "reason": result.reason or "",
    }


def summary(name: str, r: VerifyReply) -> str:
    total = r["passed"] + r["failed"]
    if r["status"] == "no-examples":
        return f"{name}: the docstring has no examples to run"
    if r["status"] in ("error", "timeout") and not total:
        return f"{name}: {r['status']}: {r['reason']}"
    text = f"{name}: {r['passed']} of {total} examples passed"
    bad = [x for x in r["results"] if not x.get("ok")]
    if bad:
        x = bad[0]
        text += (
            f"; first failure: {x.get('source')} expected {x.get('expected')} got {x.get('got')}"
        )
    return text


def message_type(r: VerifyReply) -> types.MessageType:
    if r["status"] in ("passed", "no-examples"):
        return types.MessageType.Info
    return types.MessageType.Warning


@dataclasses.dataclass(frozen=True)
class _Job:
    doc: Document
    line: int  # 0-based
    timeout_s: float
    cancel: threading.Event
    path: str | None  # the document's file: the examples run inside its project
    python: str | None  # pythonPath; None: found as verify/project.py says
    workspace_roots: tuple[str, ...]
    deadline: float  # time.monotonic(): extraction stops, no example starts, after it


def _run(job: _Job) -> tuple[str, int, VerifyReply]:
    """On a thread: find the function, run its examples. (name, def line, reply)."""
    name, def_line, why = function_at(job.doc, job.line)
    if name is None:
        return "", 0, error_reply(why)
    from phi_lsp import verify

    result = verify.verify_function(
        job.doc.text,
        name,
        timeout_s=job.timeout_s,
        line=def_line,
        cancel=job.cancel,
        path=job.path,
        python=job.python,
        workspace_roots=job.workspace_roots,
        deadline=job.deadline,
    )
    return name, def_line, reply_of(result)


async def verify_at(ls: PhiLanguageServer, args: Sequence[object]) -> VerifyReply:
    uri, (line, _) = parse_args(list(args))
    snap = await ls.store.snapshot(uri)
    if snap is None:
        raise JsonRpcInvalidParams(f"{VERIFY_COMMAND}: {uri} is not open in the editor")
    if snap.doc is None:
        why = f"cannot verify: the file is over the {ls.size_limit_text()} limit"
        ls.show(types.MessageType.Warning, f"phi-lsp: {why}")
        return error_reply(why)
    settings = ls.settings
    if not await ls.verification.may_run(ls, settings, asked=True):
        return error_reply(NOT_ISOLATED.removeprefix("phi-lsp: "))
    cancel = threading.Event()
    timeout_s = settings.verify_timeout_ms / 1000
    # Extraction and the sandbox's start are bounded too: the budget is the examples'
    # timeout plus a margin for them. The verifier stops at the deadline itself; the
    # wait below is the backstop for a thread that cannot.
    budget_s = timeout_s + BUDGET_MARGIN_S
    deadline = time.monotonic() + budget_s
    job = _Job(
        snap.doc,
        line,
        timeout_s,
        cancel,
        to_fs_path(uri),
        settings.python_path or None,
        ls.verification.workspace_roots(ls),
        deadline,
    )
    try:
        fut = asyncio.get_running_loop().run_in_executor(ls.pool, _run, job)
        name, _, reply = await asyncio.wait_for(fut, budget_s + 1.0)
    except asyncio.TimeoutError:
        cancel.set()
        why = f"verification took over {budget_s:g} s and was stopped"
        ls.show(types.MessageType.Warning, f"phi-lsp: {why}")
        return error_reply(why, "timeout")
    except asyncio.CancelledError:
        cancel.set()
        raise
    except Exception as e:
        log.exception("verifying at %s:%d failed", uri, line + 1)
        reason = f"verification failed: {e}"
        ls.show(types.MessageType.Error, f"phi-lsp: {reason}")
        return error_reply(reason)
    if not name:
        ls.show(types.MessageType.Warning, f"phi-lsp: {reply['reason']}")
        return reply
    ls.show(message_type(reply), "phi-lsp: " + summary(name, reply))
    log.info("verifyFunction %s: %s", name, summary(name, reply))
    return reply
