"""``phi-lsp model info SPEC [--json]``, ``model build-tiny [--force]``, ``model download [SPEC]``.

The parser lives in ``phi_lsp/cli.py``; this module only runs the two actions. Output
follows the project's rule: ``--json`` is one object on stdout, progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from model_runtime.types import ModelLoadError


def run_model_command(args: argparse.Namespace) -> int:
    if args.model_command == "info":
        return _info(args)
    if args.model_command == "build-tiny":
        return _build_tiny(args)
    if args.model_command == "download":
        from model_runtime.download import run_download_command

        return run_download_command(args.spec)
    print(f"phi-lsp model: unknown action {args.model_command!r}", file=sys.stderr)
    return 2


def _info(args: argparse.Namespace) -> int:
    from model_runtime.loader import describe

    try:
        facts = describe(args.spec, device=args.device, dtype=args.dtype)
        if facts.get("kind") == "openai":  # ask the server what it serves (remote.py)
            from model_runtime.remote import probe

            facts.update(
                probe(
                    facts["source"],
                    remote_model=getattr(args, "remote_model", None) or "",
                    api_key_env=getattr(args, "api_key_env", None) or "",
                )
            )
    except ModelLoadError as e:
        if args.json:
            print(json.dumps({"spec": args.spec, "error": str(e)}))
        else:
            print(f"phi-lsp model info: {e}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(facts, default=str))
    else:
        print(format_facts(facts))
    return 0


def format_facts(facts: dict[str, Any]) -> str:
    rows: list[tuple[str, str]] = [("spec", facts["spec"]), ("source", facts.get("source", ""))]
    rows.append(("backend", facts.get("backend", "")))
    for key, label in (
        ("architecture", "architecture"),
        ("params", "params"),
        ("dtype", "dtype"),
        ("device", "device"),
        ("context_length", "context"),
        ("layers", "layers"),
    ):
        value = facts.get(key)
        if value is None or value == "":
            continue
        if key == "params":
            value = f"{value:,}"
        elif key == "context_length":
            value = f"{value} tokens"
        rows.append((label, str(value)))
    present = facts.get("weights_present")
    if present is not None:
        rows.append(("weights", "present locally" if present else "not present locally"))
    build = facts.get("build")
    if build:
        rows.append(
            (
                "built",
                f"{build.get('steps')} steps, final loss {build.get('final_loss')}, "
                f"{build.get('seconds')} s, corpus {build.get('corpus_functions')} functions",
            )
        )
    if facts.get("note"):
        rows.append(("note", facts["note"]))
    return "\n".join(f"{k:<13} {v}" for k, v in rows)


def _build_tiny(args: argparse.Namespace) -> int:
    from model_runtime import tiny
    from model_runtime.progress import TerminalProgress

    target = tiny.tiny_model_dir()
    if not args.force and tiny.is_built(target, tiny.model_hash()):
        print(f"tiny: already built in {target} (--force rebuilds)", file=sys.stderr)
    else:
        print(f"tiny: training into {target} (a few minutes on a CPU)", file=sys.stderr)
    bar = TerminalProgress(sys.stderr)
    try:
        path = tiny.ensure_tiny(force=args.force, progress=bar)
    except OSError as e:
        bar.close()
        print(
            f"phi-lsp model build-tiny: cannot write {target}: {e}; "
            "set PHI_LSP_CACHE_DIR to a writable directory",
            file=sys.stderr,
        )
        return 1
    bar.close()
    print(path)
    return 0
