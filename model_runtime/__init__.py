"""Model runtime: loads a causal LM and serves generation requests.

Knows nothing about editors (no pygls, lsprotocol or tree-sitter here). torch and
transformers are imported lazily, inside the loaders, so importing this package is cheap.
"""

from __future__ import annotations

from typing import Any

from model_runtime.types import (
    Backend,
    Engine,
    EngineInfo,
    Generation,
    GenerationError,
    GenerationRequest,
    ModelLoadError,
)

__all__ = [
    "Backend",
    "Engine",
    "EngineInfo",
    "Generation",
    "GenerationError",
    "GenerationRequest",
    "ModelLoadError",
    "Worker",
    "load_engine",
]


def load_engine(spec: str, device: str = "auto", dtype: str = "auto", **options: Any) -> Engine:
    """Turn a model spec (docs/architecture.md, "Model specs") into a ready engine.
    Raises ModelLoadError."""
    from model_runtime.loader import load_engine as _load

    return _load(spec, device=device, dtype=dtype, **options)


def __getattr__(name: str) -> object:
    if name == "Worker":
        from model_runtime.worker import Worker

        return Worker
    raise AttributeError(name)
