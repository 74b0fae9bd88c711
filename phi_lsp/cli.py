"""The ``phi-lsp`` command. Parsing only; each subcommand calls one function.

Nothing heavy is imported at module level: ``phi-lsp --help`` must not load torch.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from phi_lsp import __version__

SUBCOMMANDS = ("serve", "complete", "verify", "model", "bench")


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit code 2."""


def _add_model_flags(p: argparse.ArgumentParser, default_model: str | None = None) -> None:
    p.add_argument(
        "--model",
        default=default_model,
        help="model spec: microsoft/phi-1 (default), a directory, tiny, random:phi-1[?layers=N], "
        "replay:PATH, openai:URL",
    )
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument(
        "--dtype", default="auto", choices=["auto", "float16", "bfloat16", "float32", "int8"]
    )
    _add_remote_flags(p)


def _add_remote_flags(p: argparse.ArgumentParser) -> None:
    # For --model openai:URL (settings remoteModel, apiKeyEnv; see docs/deploy.md).
    p.add_argument(
        "--remote-model", default=None, help="model name to ask an openai:URL server for"
    )
    p.add_argument(
        "--api-key-env",
        default=None,
        metavar="VAR",
        help="environment variable holding the openai:URL server's API key",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="phi-lsp",
        description="Local Python code completion with Phi-1: a language server (default: "
        "--stdio), a headless completer and a docstring-example verifier.",
    )
    parser.add_argument("--version", action="version", version=f"phi-lsp {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the language server (the default command)")
    _add_serve_flags(serve)

    c = sub.add_parser("complete", help="fill function bodies in a file, headless")
    c.add_argument("file")
    where = c.add_mutually_exclusive_group()
    where.add_argument("--line", type=int, help="the function at this line (1-based)")
    where.add_argument(
        "--at", metavar="LINE:COL", help="complete at a cursor (1-based) as an editor would"
    )
    where.add_argument(
        "--function", metavar="NAME", help="the function of this name (Class.method works)"
    )
    where.add_argument("--all", action="store_true", help="every function whose body is empty")
    _add_model_flags(c)
    c.add_argument("--max-new-tokens", type=int, default=None)
    c.add_argument(
        "--verify", action="store_true", help="run the docstring's examples on each candidate"
    )
    c.add_argument("--candidates", type=int, default=None, help="candidates to try with --verify")
    c.add_argument("--temperature", type=float, default=None)
    c.add_argument("--seed", type=int, default=0)
    out = c.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="one JSON object on stdout")
    out.add_argument("--diff", action="store_true", help="a unified diff (the default)")
    out.add_argument("--write", action="store_true", help="replace the file atomically")

    v = sub.add_parser("verify", help="run each function's docstring examples against the code")
    v.add_argument("file")
    v.add_argument("--function", metavar="NAME")
    v.add_argument("--json", action="store_true")
    v.add_argument("--timeout-ms", type=int, default=3000)

    m = sub.add_parser("model", help="inspect or build models")
    msub = m.add_subparsers(dest="model_command", metavar="ACTION", required=True)
    info = msub.add_parser("info", help="print what a model spec would load")
    info.add_argument("spec", nargs="?", default="microsoft/phi-1")
    info.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    info.add_argument("--dtype", default="auto")
    info.add_argument("--json", action="store_true")
    _add_remote_flags(info)
    bt = msub.add_parser("build-tiny", help="train the small offline test model into the cache")
    bt.add_argument("--force", action="store_true", help="rebuild even if cached")

    b = sub.add_parser("bench", help="speed figures as one JSON object")
    _add_model_flags(b, default_model="random:phi-1?layers=4")
    b.add_argument("--suite", default="engine", help="engine | pipeline | server | verify | all")
    b.add_argument("--prompt-tokens", type=int, default=1000)
    b.add_argument("--new-tokens", type=int, default=16)
    b.add_argument("--runs", type=int, default=3)
    b.add_argument("--json", action="store_true", help="(always on) one JSON object on stdout")
    return parser


def _add_serve_flags(p: argparse.ArgumentParser) -> None:
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--stdio", action="store_true", help="talk LSP over stdin/stdout (default)")
    mode.add_argument("--tcp", action="store_true", help="listen on TCP")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=2087)
    p.add_argument("--model", default=None, help="override the model setting")
    _add_remote_flags(p)
    p.add_argument("--device", default=None, choices=["auto", "cpu", "cuda"])
    p.add_argument("--log-level", default=None, choices=["debug", "info", "warning", "error"])
    p.add_argument("--log-file", default=None, help="also log here (default: the user log dir)")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # `phi-lsp`, `phi-lsp --stdio`, `phi-lsp --tcp --port N`: the server.
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version")):
        argv = ["serve", *argv]
    args = build_parser().parse_args(argv)
    handler = {
        "serve": _cmd_serve,
        "complete": _cmd_complete,
        "verify": _cmd_verify,
        "model": _cmd_model,
        "bench": _cmd_bench,
    }[args.command]
    try:
        return handler(args)
    except UsageError as e:
        print(f"phi-lsp {args.command}: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


# --- subcommands ------------------------------------------------------------------
# Each handler is owned by the module it calls; keep them short.


def _cmd_serve(args: argparse.Namespace) -> int:
    from phi_lsp.server import serve

    return serve(args)


def _cmd_complete(args: argparse.Namespace) -> int:
    from phi_lsp.completion_cli import run_complete

    return run_complete(args)


def _cmd_verify(args: argparse.Namespace) -> int:
    from phi_lsp.verify.cli import run_verify

    return run_verify(args)


def _cmd_model(args: argparse.Namespace) -> int:
    from model_runtime.cli import run_model_command

    return run_model_command(args)


def _cmd_bench(args: argparse.Namespace) -> int:
    from phi_lsp.bench import run_bench

    return run_bench(args)


if __name__ == "__main__":
    sys.exit(main())
