"""Fixtures shared by unit, e2e and gpu tests."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
# No background torch.compile of the decode step in every test that loads a large model
# (CPU minutes on a small CI box); tests of the compiled decode ask for it explicitly.
os.environ.setdefault("PHI_LSP_COMPILE", "0")
EXAMPLES = ROOT / "examples"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    has_cuda = False
    if any("gpu" in item.keywords for item in items):
        try:
            import torch

            has_cuda = torch.cuda.is_available()
        except Exception:
            has_cuda = False
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU (torch.cuda.is_available() is False)")
    for item in items:
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def phi_lsp_cmd() -> list[str]:
    """argv that starts the real `phi-lsp` command of this checkout."""
    return [sys.executable, "-m", "phi_lsp"]


@pytest.fixture(scope="session")
def tiny_dir() -> Path:
    """The built tiny model's directory (save_pretrained layout), trained once into the
    user cache ($PHI_LSP_CACHE_DIR overrides) if missing or stale: a few minutes."""
    from model_runtime import tiny

    return tiny.ensure_tiny()


@pytest.fixture
def local_hub(tiny_dir: Path) -> Iterator[tuple[str, Any]]:
    """A local Hugging Face hub (tests/hub_server.py) serving the tiny model's files as
    ``phi-lsp-test/tiny``, paced to ~1 s so progress is visible: yields (URL for
    ``HF_ENDPOINT``, the hub's state: requests seen, faults to inject)."""
    sys.path.insert(0, str(ROOT / "tests"))
    from hub_server import HubRepo, serve

    repo = HubRepo.from_dir("phi-lsp-test/tiny", tiny_dir)
    with serve(repo, chunk=128 * 1024, delay_s=0.03) as (url, state):
        yield url, state


@pytest.fixture(autouse=True, scope="session")
def _offline_env() -> None:
    # Tests never reach a hub: the default model spec must fail fast and clearly.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
