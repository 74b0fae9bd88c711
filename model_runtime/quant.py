"""Weight-only quantization with torchao (``--dtype int8`` / ``--dtype int4``).

A decode step reads every weight once per token, so on a CPU its time is about the bytes
of the weights over the memory bandwidth: int8 stores a quarter of fp32's bytes, int4
an eighth. The linear layers' weights are stored quantized (torchao tensor
subclasses); activations, norms, attention and the KV cache keep a float dtype (the
"compute dtype" below).

- int8: per-output-row symmetric int8 (``Int8WeightOnlyConfig``). torchao's eager int8
  linear dequantizes the whole weight at every call (fast only once inductor fuses
  it); on the CPU the linears call ATen's int8 weight-only kernel
  (``_weight_int8pack_mm``) on the same int8 data and scales instead, with bfloat16
  activations (its vectorised path; float32 activations measured 15x slower).
  float16 on CUDA.
- int4: groups of 128 along the input, asymmetric (tinygemm's scheme). On the CPU the
  weights are packed for ``aten._weight_int4pack_mm_for_cpu`` (torchao's
  ``PrototypeInt4WeightOnlyConfig``, Int4OpaqueTensor) and compute runs in bfloat16,
  the kernel's fast path; on CUDA ``Int4WeightOnlyConfig`` in tinygemm's tile-packed
  layout; compute in bfloat16 on both (tinygemm's activation dtype).

Both run fast eagerly on the CPU; the engine may still compile the decode step in the
background (engine.py) and keeps it only where it measures faster.

torchao is imported inside functions: importing this module is free.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from typing import Any

log = logging.getLogger(__name__)

QUANT_DTYPES = ("int8", "int4")
INT4_GROUP = 128  # input features per int4 scale/zero pair


class QuantUnavailable(RuntimeError):
    """torchao (or its kernel for this device) is missing; the message says what to do."""


def compute_dtype(kind: str, device: str) -> str:
    """The float dtype the unquantized parts run in for a quantized ``kind``."""
    if kind == "int4" or device == "cpu":
        return "bfloat16"
    return "float16"


def import_torchao() -> Any:
    """torchao, imported quietly: its import prints failures to load CUDA-only extensions
    (mxfp8, cutlass) on a CPU machine, which are not errors for us."""
    sink = io.StringIO()
    # torch's pytree logs a deprecation warning per enum torchao registers: not ours to fix.
    loggers = [logging.getLogger(n) for n in ("torchao", "torch.utils._pytree")]
    levels = [lg.level for lg in loggers]
    try:
        with (
            contextlib.redirect_stderr(sink),
            contextlib.redirect_stdout(sink),
            warnings.catch_warnings(),
        ):
            # torchao's modules use torch.jit.script_method (deprecated in torch): its
            # import-time DeprecationWarnings are not about our calls.
            warnings.simplefilter("ignore", DeprecationWarning)
            for lg in loggers:
                lg.setLevel(logging.ERROR)
            try:
                import torchao
                import torchao.prototype.quantization.int4.inference_workflow  # noqa: F401
                import torchao.quantization  # noqa: F401
            finally:
                for lg, level in zip(loggers, levels, strict=True):
                    lg.setLevel(level)
    except ImportError as e:
        raise QuantUnavailable(
            f"weight quantization needs torchao ({e}); install it in this environment "
            "(pip install torchao) or use dtype float32"
        ) from e
    if sink.getvalue().strip():
        log.debug("torchao import: %s", sink.getvalue().strip())
    return torchao


def _linear_filter(group: int | None) -> Any:
    import torch

    def keep(module: Any, fqn: str) -> bool:
        if not isinstance(module, torch.nn.Linear):
            return False
        # int4 packs groups of ``group`` input features and tiles of 16 outputs; a layer
        # of another shape (a vocabulary not a multiple of 16) stays float.
        return group is None or (module.in_features % group == 0 and module.out_features % 16 == 0)

    return keep


def quantize(model: Any, kind: str, device: str) -> Any:
    """Quantize ``model``'s linear weights in place (the output projection included: at
    Phi-1's 51,200-token vocabulary it is a third of a 4-layer model's bytes). The model
    must already be in ``compute_dtype(kind, device)`` on ``device``."""
    if kind not in QUANT_DTYPES:
        raise ValueError(f"unknown quantization {kind!r}; one of {', '.join(QUANT_DTYPES)}")
    import_torchao()
    from torchao.quantization import quantize_

    if kind == "int8":
        from torchao.quantization import Int8WeightOnlyConfig

        config: Any = Int8WeightOnlyConfig(set_inductor_config=False)
        group: int | None = None
    elif device == "cuda":
        from torchao.quantization import Int4WeightOnlyConfig

        config = Int4WeightOnlyConfig(
            group_size=INT4_GROUP,
            int4_packing_format="tile_packed_to_4d",
            set_inductor_config=False,
        )
        group = INT4_GROUP
    elif device == "cpu":
        from torchao.prototype.quantization.int4.inference_workflow import (
            PrototypeInt4WeightOnlyConfig,
        )

        config = PrototypeInt4WeightOnlyConfig(group_size=INT4_GROUP, set_inductor_config=False)
        group = INT4_GROUP
    else:
        raise QuantUnavailable(f"int4 has no kernel for device {device}; use int8 or float16")
    quantize_(model, config, filter_fn=_linear_filter(group))
    if kind == "int8" and device == "cpu":
        _int8_kernel_on_cpu(model)
    return model


def _int8_kernel_on_cpu(model: Any) -> None:
    import types

    import torch

    for mod in model.modules():
        if isinstance(mod, torch.nn.Linear) and hasattr(mod.weight, "qdata"):
            # The scales in the activations' dtype, converted once: the kernel wants them
            # so, and inductor's lowering of it takes only a stored tensor there.
            dtype = mod.bias.dtype if mod.bias is not None else torch.bfloat16
            weight: Any = mod.weight  # a torchao tensor subclass: qdata + scale
            scale = weight.scale.reshape(-1).to(dtype).contiguous()
            mod.register_buffer("int8_scale", scale, persistent=False)
            mod.forward = types.MethodType(_int8_linear, mod)  # type: ignore[method-assign]


def _int8_linear(self: Any, x: Any) -> Any:
    """y = x W^T + b with W as int8 rows and a scale per row (torchao's Int8Tensor data)."""
    import torch

    y = torch.ops.aten._weight_int8pack_mm(
        x.reshape(-1, x.shape[-1]), self.weight.qdata, self.int8_scale
    )
    y = y.reshape(*x.shape[:-1], y.shape[-1])
    return y if self.bias is None else y + self.bias


def tensor_bytes(t: Any) -> int:
    """Bytes a (possibly quantized) tensor occupies: a torchao tensor counts its inner
    tensors (int data, scales, zero points), not ``numel * element_size`` of the float
    dtype it presents."""
    inner = getattr(t, "__tensor_flatten__", None)
    if inner is not None and type(t).__name__ not in ("Tensor", "Parameter"):
        names, _ = inner()
        return sum(tensor_bytes(getattr(t, n)) for n in names if getattr(t, n) is not None)
    return int(t.numel() * t.element_size())


def weight_bytes(model: Any) -> int:
    """The model's parameters as stored (quantized ones at their packed size)."""
    return sum(tensor_bytes(p) for p in model.parameters())


def is_quantized(model: Any) -> bool:
    return any(type(p).__name__ not in ("Tensor", "Parameter") for p in model.parameters())


# Below this many parameters (``tiny``) a forward is launch overhead, not weight bytes:
# quantizing cannot pay. Same line as the engine's one-thread rule.
AUTO_MIN_PARAMS = 30_000_000
# int8: the best warm request (the one that matters while typing) in both side-by-side
# runs (README "Speed on a CPU"); int4's decode step is faster, its short prefills not.
AUTO_CPU_VARIANT = "int8"


def auto_cpu_variant(params: int) -> str:
    """What ``dtype auto`` quantizes to on the CPU: "" (stay float32) for small models
    or without torchao, else the variant measured fastest at unchanged quality
    (README "Speed on a CPU")."""
    if params < AUTO_MIN_PARAMS:
        return ""
    try:
        import_torchao()
    except QuantUnavailable:
        return ""
    return AUTO_CPU_VARIANT
