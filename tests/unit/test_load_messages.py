"""What the editor is told when a model does not load: one short message in its words."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from model_runtime.loader import not_cached_error
from model_runtime.types import ModelLoadError
from phi_lsp.server.models import MAX_MESSAGE, _failure_message

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "error",
    [
        not_cached_error("microsoft/phi-1", "offline"),
        not_cached_error("microsoft/phi-1", "unreachable"),
        ModelLoadError("device cuda was asked for, but torch sees no CUDA GPU; use --device cpu"),
        ModelLoadError("cannot load m from m: " + "a very long library explanation " * 20),
        ModelLoadError("CUDA out of memory. Tried to allocate 2.00 GiB"),
        ModuleNotFoundError("No module named 'torch'", name="torch"),
    ],
    ids=["offline", "unreachable", "flag", "long", "oom", "missing-module"],
)
def test_failure_messages_are_short_and_speak_settings(error: BaseException) -> None:
    msg = _failure_message("microsoft/phi-1", error)
    assert msg.startswith("phi-lsp")
    # A missing package names the interpreter's path twice (what to run); else < 200.
    limit = MAX_MESSAGE + 2 * len(sys.executable) if isinstance(error, ImportError) else 200
    assert len(msg) <= limit, msg
    assert "--" not in msg and "pip install phi-lsp" not in msg and ".." not in msg, msg


def test_a_path_is_said_once_and_the_setting_named() -> None:
    path = "/home/someone/models/a-model-directory-with-a-long-name"
    msg = _failure_message(path, ModelLoadError(f"model directory {path} does not exist"))
    assert msg.count(path) == 1 and msg.endswith("Check phiLsp.model.") and len(msg) < 200


def test_a_missing_package_points_at_the_install_that_exists() -> None:
    msg = _failure_message("tiny", ModuleNotFoundError("No module named 'torch'", name="torch"))
    assert f"{sys.executable} -m pip install -e {ROOT}" in msg
