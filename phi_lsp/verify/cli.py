"""``phi-lsp verify FILE [--function NAME] [--json] [--timeout-ms N] [--python PATH]``.

Runs each function's docstring examples against the code as it stands, imported as
``pytest --doctest-modules`` imports the file, with the project's interpreter
(``--python``, else ``$VIRTUAL_ENV``, ``.venv/``/``venv/`` at the project root, else
phi-lsp's own; ``--json`` says which and why). Exit 0 when every example ran and passed
(functions without examples do not count), 1 when some failed, crashed or timed out, 2
for bad usage or input (missing file, not UTF-8, a syntax error, an unknown function, a
missing or broken interpreter: one line on stderr, nothing run).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path

from phi_lsp.verify import FunctionReport, verify_source
from phi_lsp.verify.project import Project, ProjectError, resolve
from phi_lsp.verify.sandbox import isolation_summary


class _BadInput(Exception):
    pass


def _read(path: str) -> str:
    p = Path(path)
    if not p.exists():
        raise _BadInput(f"{path}: no such file")
    if not p.is_file():
        raise _BadInput(f"{path}: not a file")
    try:
        return p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise _BadInput(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise _BadInput(f"{path}: cannot read it: {e.strerror}") from None


def run_verify(args: argparse.Namespace) -> int:
    timeout_ms = getattr(args, "timeout_ms", 3000)
    if timeout_ms is None or timeout_ms < 1:
        print("phi-lsp verify: --timeout-ms must be a positive number", file=sys.stderr)
        return 2
    timeout_s = timeout_ms / 1000
    try:
        source = _read(args.file)
        # The interpreter first: when it is missing or broken nothing else runs.
        project = resolve(args.file, python=getattr(args, "python", None))
        reports = verify_source(source, args.function, timeout_s, project=project)
    except _BadInput as e:
        print(f"phi-lsp verify: {e}", file=sys.stderr)
        return 2
    except ProjectError as e:
        print(f"phi-lsp verify: {e}", file=sys.stderr)
        return 2
    except SyntaxError as e:
        print(
            f"phi-lsp verify: {args.file}:{e.lineno}:{(e.offset or 0)}: syntax error: {e.msg}",
            file=sys.stderr,
        )
        return 2
    except LookupError as e:
        print(f"phi-lsp verify: {args.file}: {e.args[0]}", file=sys.stderr)
        return 2
    bad = any(r.result.status in ("failed", "error", "timeout") for r in reports)
    if args.json:
        sandbox = next((r.result.sandbox for r in reports if r.result.sandbox), {})
        out = {
            "file": args.file,
            "python": project.describe(),
            "module": project.module_name,
            "project": {
                "root": project.root,
                "package_root": project.package_root,
                "config": project.config,
                "doctest_optionflags": list(project.optionflags),
            },
            "sandbox": isolation_summary(sandbox, timeout_s),
            "functions": [r.as_dict() for r in reports],
        }
        _print_out(json.dumps(out, indent=1))
    else:
        _print_text(args.file, reports, project)
    return 1 if bad else 0


def _print_out(text: str) -> None:
    try:
        print(text)
        sys.stdout.flush()
    except BrokenPipeError:  # `phi-lsp verify --json | head`: the reader left, not an error
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _print_text(path: str, reports: list[FunctionReport], project: Project) -> None:
    for rep in reports:
        r = rep.result
        head = f"{path}:{rep.line}: {rep.name}: {r.status}"
        if r.status in ("no-examples", "skipped"):
            print(f"{head} ({r.reason})")
            continue
        print(f"{head} ({r.passed} passed, {r.failed} failed) {r.elapsed_ms:.0f} ms")
        for x in r.results:
            if not x["ok"]:
                got = "not run" if x["got"] is None else str(x["got"]).strip()
                print(f"  {path}:{x['line']}: {x['source']}")
                print(f"    expected: {str(x['expected']).strip()}")
                print(f"    got:      {got}")
        if r.status in ("error", "timeout"):
            print(f"  {r.reason}")
        for s in r.skipped:
            print(f"  {path}:{s['line']}: skipped: {s['reason']}: {s['text']}")
    passed = sum(1 for r in reports if r.result.status == "passed")
    failing = sum(1 for r in reports if r.result.status in ("failed", "error", "timeout"))
    print(
        f"{len(reports)} functions: {passed} passed, {failing} failing "
        f"(Python {project.python_version}, {project.python_reason}: {project.python})",
        file=sys.stderr,
    )
