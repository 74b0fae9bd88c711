"""torchao int8/int4 weight-only quantization on CUDA: the same code path as on the CPU
(model_runtime/quant.py), int4 in tinygemm's tile-packed layout.

Skipped without a CUDA GPU (conftest marks ``gpu`` tests); never run here (no GPU was
lent while this was built). Run: ``.venv/bin/python -m pytest tests/gpu -m gpu -s``.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("dtype", ["int8", "int4"])
def test_quantized_tiny_on_cuda_writes_what_it_writes_on_the_cpu(dtype: str) -> None:
    import torch

    if not torch.cuda.is_available():  # also when run with -p no:conftest
        pytest.skip("needs a CUDA GPU (torch.cuda.is_available() is False)")
    from model_runtime import load_engine, quant, tiny
    from model_runtime.types import GenerationRequest

    gpu = load_engine("tiny", device="cuda", dtype=dtype, cuda_graphs=False)
    ref = load_engine("tiny", device="cpu", dtype="float32")
    assert gpu.info.dtype == dtype and quant.is_quantized(gpu.model)  # type: ignore[attr-defined]
    funcs = tiny.corpus_functions()
    same = 0
    names = list(funcs)[:20]
    for name in names:
        prompt = tiny.split_at_docstring(funcs[name])[0]
        req = GenerationRequest(prompt=prompt, forced_prefix="\n    ", max_new_tokens=24)
        same += gpu.generate(req).text == ref.generate(req).text
    # Different kernels round differently: most bodies, not all, match float32 on the CPU.
    assert same >= 0.8 * len(names), (dtype, same)


def test_quantized_full_phi1_decodes_on_cuda() -> None:
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU (torch.cuda.is_available() is False)")
    from model_runtime import load_engine
    from model_runtime.types import GenerationRequest

    for dtype in ("int8", "int4"):
        eng = load_engine("random:phi-1", device="cuda", dtype=dtype)
        g = eng.generate(GenerationRequest(prompt="def f(x):\n", max_new_tokens=16))
        assert g.new_tokens > 0 and eng.info.dtype == dtype
        eng.close()
