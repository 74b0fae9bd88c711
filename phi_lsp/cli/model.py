"""``phi-lsp model ACTION``: inspect, build or fetch models.

Each action is a sub-parser here and a branch of ``model_runtime.cli.run_model_command``
(the model runtime's own code: describe, probe, build). A new action: add its parser
in ``add_parser`` below and its branch there.
"""

from __future__ import annotations

import argparse

from model_runtime.types import DEVICES
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
    from model_runtime.cli import run_model_command

    return run_model_command(args)
