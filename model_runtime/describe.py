"""What a model spec would load, without loading it (``phi-lsp model info``).

No weights are read and transformers is not imported: the source, architecture, the
parameter count (safetensors headers, else Phi's shape formula, else the config on the
meta device), dtype, device, context length, and whether the weights are here. Errors
are the loader's own (``ModelLoadError``), raised by the same checks.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

from model_runtime.loader import (
    PHI1_SHAPE,
    WEIGHT_FILES,
    _check_model_dir,
    _hub_reachable,
    _offline,
    hub_cached_file,
    not_cached_error,
    parse_spec,
    resolve_device,
    resolve_dtype,
)
from model_runtime.types import DTYPES, ModelLoadError

log = logging.getLogger(__name__)


def describe(spec: str, device: str = "auto", dtype: str = "auto") -> dict[str, Any]:
    """What ``spec`` would load, without loading weights or transformers: source,
    architecture, params (from safetensors headers, else Phi's shape formula, else the
    config on the meta device), dtype, device, context length, and whether the weights
    are present locally. Raises ModelLoadError like the loader would."""
    p = parse_spec(spec)
    out: dict[str, Any] = {"spec": spec, "kind": p.kind}
    if p.kind == "replay":
        path = Path(p.target).expanduser()
        out.update(source=str(path), backend="replay", weights_present=path.is_file())
        return out
    if p.kind == "openai":
        out.update(source=p.target, backend="openai", weights_present=None)
        return out
    out["backend"] = "local"
    if dtype not in DTYPES:
        resolve_dtype(dtype, "cpu")  # raises the same error the loader would
    hub_config = _describe_hub(p.target, out) if p.kind == "hub" else None
    dev = resolve_device(device)
    out.update(device=dev, dtype=resolve_dtype(dtype, dev))
    config: dict[str, Any] | None = None
    weights: list[Path] = []
    if p.kind == "tiny":
        from model_runtime import tiny

        path = tiny.tiny_model_dir()
        built = tiny.is_built(path, tiny.model_hash())
        out.update(source=str(path), weights_present=built, built=built)
        if built:
            config, weights = _read_config(path / "config.json"), _weight_files(path)
            out["build"] = tiny.read_meta(path)
        else:
            out["note"] = "not built yet: `phi-lsp model build-tiny` (or first use) trains it"
            r = tiny.MODEL_RECIPE
            config = {  # params approximate: the vocabulary size is known after training
                "model_type": "phi",
                "architectures": ["PhiForCausalLM"],
                "vocab_size": tiny.TOKENIZER_RECIPE["vocab_size"],
                **{k: r[k] for k in ("hidden_size", "intermediate_size", "num_hidden_layers")},
                "max_position_embeddings": r["max_position_embeddings"],
            }
    elif p.kind == "random":
        config = {"model_type": "phi", "architectures": ["PhiForCausalLM"], **PHI1_SHAPE}
        config["num_hidden_layers"] = p.query.get("layers", PHI1_SHAPE["num_hidden_layers"])
        out.update(source="random weights (Phi-1 shape)", weights_present=True)
    elif p.kind == "dir":
        path = Path(p.target)
        if not (path / "config.json").is_file():
            _check_model_dir(path)  # raises: no config.json
        config, weights = _read_config(path / "config.json"), _weight_files(path)
        out.update(source=str(path), weights_present=bool(weights))
    elif hub_config is not None:
        config, weights = _read_config(hub_config), _weight_files(hub_config.parent)
    if config is not None:
        out.update(_config_facts(config, weights))
    if dtype == "auto" and dev == "cpu" and out.get("params"):
        from model_runtime import quant

        out["dtype"] = quant.auto_cpu_variant(int(out["params"])) or out["dtype"]
    return out


def _describe_hub(repo_id: str, out: dict[str, Any]) -> Path | None:
    """Fill ``out`` with where a hub id would come from; return its cached config.json.
    Not cached and not downloadable (offline, or the hub unreachable): ModelLoadError."""
    cfg_file = hub_cached_file(repo_id, "config.json")
    weights = any(hub_cached_file(repo_id, f) for f in WEIGHT_FILES)
    out.update(source=f"{repo_id} (Hugging Face hub)", weights_present=weights)
    if cfg_file is None or not weights:
        why = "offline" if _offline() else "unreachable" if not _hub_reachable() else ""
        if not why:
            out["note"] = (
                f"not downloaded yet: first use downloads it, or `phi-lsp model download {repo_id}`"
            )
        elif cfg_file is None:
            raise not_cached_error(repo_id, why)
        else:
            out["note"] = str(not_cached_error(repo_id, why))
    if cfg_file is None:
        return None
    out["source"] = f"{repo_id} (Hugging Face cache: {Path(cfg_file).parent})"
    return Path(cfg_file)


def _read_config(path: Path) -> dict[str, Any]:
    try:
        config = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"cannot read {path}: {e}") from e
    if not isinstance(config, dict):
        raise ModelLoadError(f"{path} is not a JSON object")
    return config


def _weight_files(directory: Path) -> list[Path]:
    """The safetensors files of a save_pretrained directory (sharded or not)."""
    single = directory / "model.safetensors"
    if single.is_file():
        return [single]
    index = directory / "model.safetensors.index.json"
    try:
        shards = sorted(set(json.loads(index.read_text("utf-8"))["weight_map"].values()))
    except (OSError, ValueError, KeyError, TypeError):
        return [directory / f for f in WEIGHT_FILES[2:] if (directory / f).is_file()]
    return [directory / s for s in shards if (directory / s).is_file()]


def _safetensors_params(files: list[Path]) -> int | None:
    """Parameter count from the safetensors headers (8-byte length + JSON): no tensors read."""
    if not files or any(f.suffix != ".safetensors" for f in files):
        return None
    total = 0
    try:
        for f in files:
            with open(f, "rb") as fh:
                n = int.from_bytes(fh.read(8), "little")
                header = json.loads(fh.read(n))
            for key, t in header.items():
                if key != "__metadata__":
                    total += math.prod(t["shape"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return total


def _phi_params(c: dict[str, Any]) -> int:
    """PhiForCausalLM's parameter count from its shape (untied head, biases everywhere)."""
    d, ff, v, n = c["hidden_size"], c["intermediate_size"], c["vocab_size"], c["num_hidden_layers"]
    heads = c.get("num_attention_heads") or 1
    kv = d // heads * (c.get("num_key_value_heads") or heads)  # k/v width (GQA-aware)
    attn = (d * d + d) * 2 + (d * kv + kv) * 2  # q, dense; k, v
    layer = attn + (d * ff + ff) + (ff * d + d) + 2 * d
    return v * d + n * layer + 2 * d + (d * v + v)


def _meta_params(config: dict[str, Any]) -> tuple[int | None, str]:
    """Any other architecture: instantiate on the meta device (shapes only, no memory)."""
    try:
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM

        cfg = AutoConfig.for_model(**config)
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(cfg)
        return sum(p.numel() for p in model.parameters()), type(model).__name__
    except Exception as e:  # an architecture this transformers does not know
        log.debug("cannot count parameters: %s", e)
        return None, ""


def _config_facts(config: dict[str, Any], weights: list[Path]) -> dict[str, Any]:
    arch = ",".join(config.get("architectures") or [])
    params = _safetensors_params(weights)
    if params is None and config.get("model_type") == "phi":
        try:
            params = _phi_params(config)
        except (KeyError, TypeError, ZeroDivisionError):
            params = None
    if params is None:
        params, meta_arch = _meta_params(config)
        arch = arch or meta_arch
    return {
        "architecture": arch,
        "params": params,
        "context_length": config.get("max_position_embeddings"),
        "layers": config.get("num_hidden_layers"),
        "hidden_size": config.get("hidden_size"),
        "vocab_size": config.get("vocab_size"),
    }
