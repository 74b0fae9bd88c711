"""``phi-lsp serve`` (the default command): the language server over stdio or TCP."""

from __future__ import annotations

import argparse

from model_runtime.types import DEVICES
from phi_lsp.cli.flags import MODEL_HELP, add_remote_flags
from phi_lsp.settings import LOG_LEVELS

NAME = "serve"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(NAME, help="run the language server (the default command)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--stdio", action="store_true", help="talk LSP over stdin/stdout (default)")
    mode.add_argument("--tcp", action="store_true", help="listen on TCP")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=2087)
    p.add_argument("--model", default=None, help="override the model setting; " + MODEL_HELP)
    add_remote_flags(p)
    p.add_argument("--device", default=None, choices=DEVICES)
    p.add_argument("--log-level", default=None, choices=LOG_LEVELS)
    p.add_argument("--log-file", default=None, help="also log here (default: the user log dir)")


def run(args: argparse.Namespace) -> int:
    from phi_lsp.server import serve

    return serve(args)
