"""``phi-lsp model ACTION``: ``info SPEC [--json]``, ``build-tiny [--force]``,
``download [SPEC]``.

A new action: its sub-parser in ``add_parser`` and its branch in ``run``; the work
itself stays in ``model_runtime`` (describe, probe, build, download). Output follows
the project's rule: ``--json`` is one object on stdout, progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from model_runtime.types import DEVICES, ModelLoadError
from phi_lsp.cli.errors import report
from phi_lsp.cli.flags import add_remote_flags

NAME = "model"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    m = sub.add_parser(NAME, help="inspect, build or download models")
    actions = m.add_subparsers(dest="model_command", metavar="ACTION", required=True)

    info = actions.add_parser("info", help="print what a model spec would load")
    info.add_argument("spec", nargs="?", default="microsoft/phi-1")
    info.add_argument("--device", default="auto", choices=DEVICES)
    info.add_argument("--dtype", default="auto")
    info.add_argument("--json", action="store_true")
    add_remote_flags(info)

    bt = actions.add_parser("build-tiny", help="train the small offline test model into the cache")
    bt.add_argument("--force", action="store_true", help="rebuild even if cached")

    dl = actions.add_parser(
        "download", help="get a model's files now (hub weights into the HF cache; tiny: build)"
    )
    dl.add_argument("spec", nargs="?", default="microsoft/phi-1")


def run(args: argparse.Namespace) -> int:
    if args.model_command == "info":
        return _info(args)
    if args.model_command == "build-tiny":
        return _build_tiny(args)
    return _download(args.spec)  # argparse allows no other action


def _info(args: argparse.Namespace) -> int:
    from model_runtime.describe import describe

    try:
        facts = describe(args.spec, device=args.device, dtype=args.dtype)
        if facts.get("kind") == "openai":  # ask the server what it serves (remote.py)
            from model_runtime.remote import probe

            facts.update(
                probe(
                    facts["source"],
                    remote_model=args.remote_model or "",
                    api_key_env=args.api_key_env or "",
                    ca_bundle=getattr(args, "ca_bundle", None) or "",
                )
            )
    except ModelLoadError as e:
        if args.json:
            print(json.dumps({"spec": args.spec, "error": str(e)}))
        else:
            report("model info", e)
        return 1
    print(json.dumps(facts, default=str) if args.json else format_facts(facts))
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
        report(
            "model build-tiny",
            f"cannot write {target}: {e}; set PHI_LSP_CACHE_DIR to a writable directory",
        )
        return 1
    bar.close()
    print(path)
    return 0


def _download(spec: str) -> int:
    """Get a model's files now, with progress on stderr (a bar on a terminal, a line per
    step otherwise); the directory on stdout. Exit 0 done (or nothing to download), 1
    failed, 2 bad spec."""
    from pathlib import Path

    from model_runtime import download
    from model_runtime.loader import parse_spec
    from model_runtime.progress import TerminalProgress

    what = "model download"
    try:
        p = parse_spec(spec)
    except ModelLoadError as e:
        report(what, e)
        return 2
    bar = TerminalProgress(sys.stderr)
    try:
        if p.kind == "tiny":
            from model_runtime import tiny

            path = tiny.ensure_tiny(progress=bar)
        elif (
            p.kind == "hub"
            and download.is_cached(p.target)
            and (download.offline() or not download.hub_reachable())
        ):
            path = Path(download.cached_file(p.target, "config.json") or "").parent
            report(what, f"{spec} is already in the cache")
        elif p.kind == "hub":
            path = download.download(p.target, progress=bar)
        else:
            kind = {
                "dir": "a local directory",
                "random": "random weights made on load",
                "replay": "a replay file",
                "openai": "served by a remote server",
            }[p.kind]
            report(what, f"{spec} is {kind}: nothing to download")
            return 0
    except (ModelLoadError, OSError) as e:  # OSError: the cache directory is not writable
        bar.close()
        report(what, e)
        return 1
    bar.close()
    print(path)
    return 0
