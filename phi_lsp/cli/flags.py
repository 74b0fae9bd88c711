"""Flags several commands share (model choice, remote server)."""

from __future__ import annotations

import argparse

from model_runtime.types import DEVICES, DTYPES

MODEL_HELP = (
    "model spec: microsoft/phi-1 (default), a directory, tiny, random:phi-1[?layers=N], "
    "replay:PATH, openai:URL"
)


def add_model_flags(p: argparse.ArgumentParser, default_model: str | None = None) -> None:
    p.add_argument("--model", default=default_model, help=MODEL_HELP)
    p.add_argument("--device", default="auto", choices=DEVICES)
    p.add_argument("--dtype", default="auto", choices=DTYPES)
    add_remote_flags(p)


def add_remote_flags(p: argparse.ArgumentParser) -> None:
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
    p.add_argument(
        "--ca-bundle",
        default=None,
        metavar="PEM",
        help="CA certificate(s) to trust for an openai:https:// server behind a TLS proxy",
    )
