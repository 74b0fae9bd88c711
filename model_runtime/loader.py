"""Model specs → engines. See docs/architecture.md "Model specs".

``microsoft/phi-1`` (a hub id), a directory, and ``tiny`` all go through the real
transformers ``from_pretrained`` path; ``random:phi-1[?layers=N]`` builds Phi-1's shape
with random weights; ``replay:PATH`` and ``openai:URL`` are backends of their own.

torch/transformers are imported inside functions, so importing this module is cheap.
Every failure a user can cause is a ``ModelLoadError`` that says what to do.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from model_runtime import download as download_mod
from model_runtime.progress import ProgressFn, Reporter, library_progress
from model_runtime.quant import QUANT_DTYPES
from model_runtime.types import DEVICES, DTYPES, Engine, EngineInfo, ModelLoadError

log = logging.getLogger(__name__)

WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
# Phi-1's exact shape (config.json of microsoft/phi-1), for random:phi-1.
PHI1_SHAPE: dict[str, Any] = {
    "vocab_size": 51200,
    "hidden_size": 2048,
    "intermediate_size": 8192,
    "num_hidden_layers": 24,
    "num_attention_heads": 32,
    "max_position_embeddings": 2048,
    "hidden_act": "gelu_new",
    "layer_norm_eps": 1e-5,
    "resid_pdrop": 0.0,
    "embd_pdrop": 0.0,
    "attention_dropout": 0.0,
    "partial_rotary_factor": 0.5,
    "rope_theta": 10000.0,
}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_RANDOM_KEYS = {"layers", "seed"}


@dataclass(frozen=True)
class Spec:
    """A parsed model spec. ``kind``: hub | dir | tiny | random | replay | openai."""

    text: str
    kind: str
    target: str = ""  # hub id, directory, URL or file, as the kind needs
    query: dict[str, int] = field(default_factory=dict)


def parse_spec(spec: str) -> Spec:
    """Classify a spec without touching the disk's models or the network."""
    s = spec.strip()
    if not s:
        raise ModelLoadError("empty model spec; try microsoft/phi-1, a directory, or tiny")
    if s.startswith("replay:"):
        return Spec(s, "replay", s.removeprefix("replay:"))
    if s.startswith("openai:"):
        return Spec(s, "openai", s.removeprefix("openai:"))
    if s == "tiny":
        return Spec(s, "tiny")
    if s.startswith("random:"):
        return _parse_random(s)
    path = Path(s).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelLoadError(
                f"{s} is a file, not a model directory (expected a directory saved with "
                "save_pretrained: config.json, weights, tokenizer files)"
            )
        return Spec(s, "dir", str(path.resolve()))
    if s.startswith(("/", ".", "~")) or s.count("/") > 1 or os.sep in s.replace("/", ""):
        raise ModelLoadError(f"model directory {s} does not exist")
    if _HUB_ID.match(s):
        return Spec(s, "hub", s)
    raise ModelLoadError(
        f"{s!r} is not a model spec: use a Hugging Face id (microsoft/phi-1), a directory, "
        "tiny, random:phi-1[?layers=N], replay:PATH or openai:URL"
    )


def _parse_random(s: str) -> Spec:
    u = urlparse(s)
    name = s.removeprefix("random:").split("?", 1)[0]
    if name != "phi-1":
        raise ModelLoadError(
            f"{s}: only random:phi-1 is known (Phi-1's shape with random weights), not {name!r}"
        )
    query: dict[str, int] = {}
    for key, values in parse_qs(u.query, keep_blank_values=True, strict_parsing=False).items():
        if key not in _RANDOM_KEYS:
            raise ModelLoadError(f"{s}: unknown option {key!r} (known: layers, seed)")
        try:
            query[key] = int(values[-1])
        except ValueError:
            raise ModelLoadError(f"{s}: {key} must be an integer, got {values[-1]!r}") from None
    if "?" in s and not query:
        raise ModelLoadError(f"{s}: bad query; write random:phi-1?layers=N")
    layers = query.get("layers", PHI1_SHAPE["num_hidden_layers"])
    if not 1 <= layers <= 64:
        raise ModelLoadError(f"{s}: layers must be between 1 and 64, got {layers}")
    return Spec(s, "random", "phi-1", query)


# --- device and dtype ---------------------------------------------------------------


def _has_mps() -> bool:
    import torch

    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def resolve_device(device: str) -> str:
    """auto → cuda if available, then Apple's mps, else cpu. An explicit cuda or mps
    that torch cannot see is an error."""
    if device not in DEVICES:
        raise ModelLoadError(f"device {device!r} is not one of {', '.join(DEVICES)}")
    if device == "cpu":
        return "cpu"
    import torch

    has_cuda = torch.cuda.is_available()
    if device == "cuda" and not has_cuda:
        raise ModelLoadError(
            "device cuda was asked for, but torch sees no CUDA GPU "
            f"(torch {torch.__version__}); use --device cpu or auto"
        )
    if device == "mps" and not _has_mps():
        raise ModelLoadError(
            "device mps was asked for, but torch sees no Apple GPU (Metal) "
            f"(torch {torch.__version__}); use --device cpu or auto"
        )
    if has_cuda and device != "mps":
        return "cuda"
    return "mps" if device == "mps" or _has_mps() else "cpu"


def resolve_dtype(dtype: str, device: str) -> str:
    """auto → float16 on CUDA and MPS, float32 on CPU (CPU half precision is slow,
    measured; on the CPU ``auto`` may still quantize a large model after loading:
    ``quant.auto_cpu_variant``). int8/int4 are torchao weight-only quantization."""
    if dtype not in DTYPES:
        raise ModelLoadError(f"dtype {dtype!r} is not one of {', '.join(DTYPES)}")
    if dtype == "int4" and device == "mps":
        raise ModelLoadError("dtype int4 has no kernel on Apple GPUs (mps); use float16 or int8")
    if dtype == "auto":
        return "float16" if device in ("cuda", "mps") else "float32"
    if device == "cpu" and dtype in ("float16", "bfloat16"):
        log.warning("dtype %s on the CPU is slow (no fast kernels); float32 is faster", dtype)
    return dtype


# --- engines ------------------------------------------------------------------------


def load_engine(
    spec: str,
    device: str = "auto",
    dtype: str = "auto",
    *,
    progress: ProgressFn | None = None,
    **options: Any,
) -> Engine:
    """``progress`` hears the long first steps of a local model: the download of a hub
    id that is not cached, the build of ``tiny``, the load (``model_runtime.progress``)."""
    p = parse_spec(spec)
    if p.kind == "replay":
        from model_runtime.backends.replay import ReplayEngine

        delay = float(options.get("replay_delay_s", 0.0))
        return ReplayEngine(p.target, delay_s=delay)
    if p.kind == "openai":
        # A remote OpenAI-compatible server; options: remote_model, api_key_env, timeout_s,
        # verify_tls (see backends/openai.py). device/dtype are the server's business.
        from model_runtime.backends.openai import OpenAIEngine

        return OpenAIEngine(p.target, **options)
    model, tokenizer, info = load_model_and_tokenizer(
        spec, device=device, dtype=dtype, progress=progress
    )
    if dtype == "auto" and info.device == "cpu":
        # The fastest variant that keeps quality (quant.auto_cpu_variant): a large model
        # is quantized after loading; tiny stays float32.
        from model_runtime.quant import auto_cpu_variant

        kind = auto_cpu_variant(info.params)
        if kind:
            info = _quantize(spec, model, info, kind)
    import inspect

    from model_runtime.engine import LocalEngine

    # Engine options (speculative, draft_tokens, threads, ...) go through; options meant
    # for other backends (replay_delay_s, remote_model, ...) are not the local engine's.
    known = inspect.signature(LocalEngine).parameters
    ignored = sorted(k for k in options if k not in known)
    if ignored:
        log.debug("options %s do not apply to the local engine", ", ".join(ignored))
    return LocalEngine(model, tokenizer, info, **{k: v for k, v in options.items() if k in known})


def load_model_and_tokenizer(
    spec: str,
    device: str = "auto",
    dtype: str = "auto",
    *,
    progress: ProgressFn | None = None,
) -> tuple[Any, Any, EngineInfo]:
    """(model on its device/dtype in eval mode, PreTrainedTokenizerFast, EngineInfo).

    A hub id that is not cached is downloaded first (``download.download``); offline or
    unreachable, that is a ``ModelUnavailable`` before torch is imported."""
    p = parse_spec(spec)
    if p.kind in ("replay", "openai"):
        raise ModelLoadError(f"{spec}: not a local transformers model")
    # Cheap checks first: a hub id that is not cached fails before torch is imported.
    hub = _hub_source(p.target) if p.kind == "hub" else None
    dev = resolve_device(device)
    dt = resolve_dtype(dtype, dev)
    if dt in QUANT_DTYPES:
        return _load_quantized(spec, dev, dt, progress)
    if p.kind == "random":
        return _load_random(p, dev, dt)
    if p.kind == "tiny":
        from model_runtime import tiny

        try:
            path = tiny.ensure_tiny(progress=progress)
        except OSError as e:
            raise ModelLoadError(
                f"tiny: cannot build the tiny model in {tiny.tiny_model_dir()}: {e}; "
                "set PHI_LSP_CACHE_DIR to a writable directory"
            ) from e
        return _load_pretrained(spec, str(path), str(path), dev, dt, True, progress)
    if p.kind == "dir":
        _check_model_dir(Path(p.target))
        return _load_pretrained(spec, p.target, p.target, dev, dt, True, progress)
    assert hub is not None
    source, local_only = hub
    if source is None:  # not cached, the hub reachable: fetch it, with progress
        from model_runtime.download import download

        where = str(download(p.target, progress=progress))
        source = f"{p.target} (Hugging Face cache)"
        return _load_pretrained(spec, where, source, dev, dt, True, progress)
    return _load_pretrained(spec, p.target, source, dev, dt, local_only, progress)


def _load_quantized(
    spec: str, device: str, kind: str, progress: ProgressFn | None
) -> tuple[Any, Any, EngineInfo]:
    """Load in the float dtype the quantized model computes in, then quantize its linear
    weights (quant.py)."""
    from model_runtime import quant

    # The compute dtype is our choice, not the user's: no "bfloat16 on the CPU" warning.
    log.addFilter(_not_slow_dtype)
    try:
        base = quant.compute_dtype(kind, device)
        model, tokenizer, info = load_model_and_tokenizer(spec, device, base, progress=progress)
    finally:
        log.removeFilter(_not_slow_dtype)
    return model, tokenizer, _quantize(spec, model, info, kind)


def _quantize(spec: str, model: Any, info: EngineInfo, kind: str) -> EngineInfo:
    from dataclasses import replace

    from model_runtime import quant

    model.to(_torch_dtype(quant.compute_dtype(kind, info.device)))
    try:
        quant.quantize(model, kind, info.device)
    except quant.QuantUnavailable as e:
        raise ModelLoadError(f"{spec}: {e}") from e
    return replace(info, dtype=kind)


def _not_slow_dtype(record: logging.LogRecord) -> bool:
    return "on the CPU is slow" not in record.getMessage()


def _check_model_dir(path: Path) -> None:
    if not (path / "config.json").is_file():
        raise ModelLoadError(
            f"{path} has no config.json: not a model directory saved with save_pretrained"
        )
    if not any((path / f).is_file() for f in WEIGHT_FILES):
        raise ModelLoadError(
            f"{path} has a config.json but no weights ({' or '.join(WEIGHT_FILES[::2])})"
        )


def _torch_dtype(name: str) -> Any:
    import torch

    return {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}[name]


def _load_pretrained(
    spec: str,
    where: str,
    source: str,
    device: str,
    dtype: str,
    local_only: bool,
    progress: ProgressFn | None = None,
) -> tuple[Any, Any, EngineInfo]:
    """``from_pretrained`` for a directory or a cached hub id. Its "Loading weights" bar
    becomes ``Progress("load", ...)`` (never a bar on stderr: editors show that as errors)."""
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    transformers.utils.logging.disable_progress_bar()
    reporter = Reporter(progress, "load", f"loading {spec}", None, unit="tensors")
    reporter.update(0)
    version = tuple(int(x) for x in re.findall(r"\d+", transformers.__version__)[:2])
    # transformers 5 always loads low-memory (meta, then the weights); 4.x needs asking,
    # and called the dtype argument torch_dtype before 4.56.
    kwargs: dict[str, Any] = {"local_files_only": local_only}
    kwargs["dtype" if version >= (4, 56) else "torch_dtype"] = _torch_dtype(dtype)
    if version < (5, 0):
        kwargs["low_cpu_mem_usage"] = True
    if device == "cuda":
        kwargs["device_map"] = "cuda"  # accelerate places the weights straight on the GPU
    try:
        with library_progress(reporter):
            model = AutoModelForCausalLM.from_pretrained(where, **kwargs)
            tokenizer = AutoTokenizer.from_pretrained(where, local_files_only=local_only)
    except ModelLoadError:
        raise
    except Exception as e:  # OSError, hub errors, bad config/weights: one clear message
        raise ModelLoadError(f"cannot load {spec} from {source}: {e}") from e
    if device == "cpu":
        model.to("cpu")  # type: ignore[arg-type]  # transformers' annotation of .to is wrong
    model.eval().requires_grad_(False)  # inference only: no autograd bookkeeping
    reporter.update(1, total=1)
    return model, tokenizer, _info(spec, source, model, device, dtype)


def _info(spec: str, source: str, model: Any, device: str, dtype: str) -> EngineInfo:
    cfg = model.config
    return EngineInfo(
        spec=spec,
        source=source,
        backend="local",
        device=device,
        dtype=dtype,
        params=sum(p.numel() for p in model.parameters()),
        context_length=int(getattr(cfg, "max_position_embeddings", 2048)),
        architecture=type(model).__name__,
    )


# --- random:phi-1 -------------------------------------------------------------------


def phi1_config(layers: int | None = None, vocab_size: int | None = None) -> Any:
    from transformers import PhiConfig

    shape = dict(PHI1_SHAPE)
    rope = {
        "rope_type": "default",
        "rope_theta": shape.pop("rope_theta"),
        "partial_rotary_factor": shape.pop("partial_rotary_factor"),
    }
    if layers is not None:
        shape["num_hidden_layers"] = layers
    if vocab_size is not None:
        shape["vocab_size"] = vocab_size
    return PhiConfig(**shape, rope_parameters=rope, tie_word_embeddings=False)


def _load_random(p: Spec, device: str, dtype: str) -> tuple[Any, Any, EngineInfo]:
    """Phi-1's shape with seeded random weights and the tiny tokenizer (its ids fit in
    Phi-1's 51,200 vocabulary). Built on the meta device, then materialised and
    initialised once (the default path initialises every weight twice)."""
    import torch
    from transformers import AutoTokenizer, PhiForCausalLM

    from model_runtime import tiny

    try:
        tokenizer = AutoTokenizer.from_pretrained(tiny.ensure_tokenizer())
    except OSError as e:
        raise ModelLoadError(f"{p.text}: cannot build the tiny tokenizer: {e}") from e
    config = phi1_config(p.query.get("layers"))
    config.bos_token_id = config.eos_token_id = config.pad_token_id = tokenizer.eos_token_id
    tdtype = _torch_dtype(dtype)
    with torch.device("meta"):
        model = PhiForCausalLM(config)
    model = model.to(tdtype).to_empty(device=device)  # cast on meta: no fp32 copy
    gen = torch.Generator(device=device).manual_seed(p.query.get("seed", 0))
    std = config.initializer_range
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "layernorm" in name:
                param.fill_(1.0 if name.endswith("weight") else 0.0)
            elif name.endswith("bias"):
                param.zero_()
            else:
                param.normal_(0.0, std, generator=gen)
        # Non-persistent buffers (rotary inverse frequencies) were left empty by to_empty.
        with torch.device(device):
            model.model.rotary_emb = type(model.model.rotary_emb)(config)
    model.eval().requires_grad_(False)
    source = f"random weights, Phi-1 shape, {config.num_hidden_layers} layers"
    return model, tokenizer, _info(p.text, source, model, device, dtype)


# --- the hub ---------------------------------------------------------------------------

_offline = download_mod.offline
_hub_reachable = download_mod.hub_reachable
hub_cached_file = download_mod.cached_file


def _hub_source(repo_id: str) -> tuple[str | None, bool]:
    """Where ``repo_id`` loads from and whether from local files only (cached and
    offline or unreachable: a cached model never waits on the network). (None, True):
    not cached and the hub reachable, to be downloaded. Not cached and no hub:
    ModelUnavailable, fast (before torch is imported)."""
    if download_mod.is_cached(repo_id):
        return f"{repo_id} (Hugging Face cache)", _offline() or not _hub_reachable()
    if _offline():
        raise not_cached_error(repo_id, "offline")
    if not _hub_reachable():
        raise not_cached_error(repo_id, "unreachable")
    return None, True


def not_cached_error(repo_id: str, why: str) -> download_mod.ModelUnavailable:
    """Offline or unreachable: the same error ``download`` raises."""
    if why == "offline":
        return download_mod.ModelUnavailable(
            repo_id,
            "offline",
            f"{repo_id} is not downloaded yet, and offline mode is on (HF_HUB_OFFLINE).",
            "offline mode is on (HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE)",
        )
    return download_mod.ModelUnavailable(
        repo_id,
        "unreachable",
        f"{repo_id} is not downloaded yet, and the Hugging Face hub cannot be reached.",
        f"the hub ({download_mod.endpoint()}) cannot be reached",
    )
