"""Weight-only quantization (torchao int8/int4), the compiled CPU decode, device/dtype
selection (MPS stubbed: it cannot run here) and thread defaults."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
import torch

from model_runtime import describe, loader, quant, tiny
from model_runtime.engine import LocalEngine
from model_runtime.threads import is_small, physical_cores, pick_threads
from model_runtime.types import GenerationRequest, ModelLoadError

pytest.importorskip("torchao", reason="quantization needs torchao (pyproject dependency)")

# Runs each candidate's doctests in a plain child process, one namespace per function.
_RUN_DOCTESTS = r"""
import doctest, json, signal, sys
results = {}
for name, src in json.load(sys.stdin).items():
    signal.alarm(5)  # a wrong body may loop forever
    try:
        ns = {}
        exec(compile(src, name, "exec"), ns)
        runner = doctest.DocTestRunner(verbose=False)
        for test in doctest.DocTestFinder().find(ns[name], name, globs=ns):
            runner.run(test, out=lambda s: None)
        results[name] = runner.tries > 0 and runner.failures == 0
    except BaseException:
        results[name] = False
    signal.alarm(0)
print(json.dumps(results))
"""


def _passing(eng: LocalEngine, funcs: dict[str, str]) -> set[str]:
    """Names whose greedy body (written by ``eng`` after the docstring) passes the
    function's own doctests."""
    candidates = {}
    for name, src in funcs.items():
        prompt, _ = tiny.split_at_docstring(src)
        g = eng.generate(
            GenerationRequest(
                prompt=prompt,
                forced_prefix="\n    ",
                max_new_tokens=96,
                stop_fn=lambda t: re.search(r"\n\S", t) is not None,  # dedent ends the body
            )
        )
        candidates[name] = prompt + re.split(r"\n(?=\S)", g.text)[0]
    p = subprocess.run(
        [sys.executable, "-c", _RUN_DOCTESTS],
        input=json.dumps(candidates),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stderr
    return {n for n, ok in json.loads(p.stdout).items() if ok}


@pytest.fixture(scope="module")
def tiny_engines() -> dict[str, LocalEngine]:
    from model_runtime import load_engine

    out = {}
    for dtype in ("float32", "int8", "int4"):
        eng = load_engine("tiny", device="cpu", dtype=dtype, compiled_decode=False)
        assert isinstance(eng, LocalEngine)
        out[dtype] = eng
    return out


def test_int8_and_int4_write_the_corpus_functions_as_often_as_float32(
    tiny_engines: dict[str, LocalEngine],
) -> None:
    funcs = tiny.corpus_functions()
    base = _passing(tiny_engines["float32"], funcs)
    assert len(base) >= len(funcs) * 0.8, "the float32 reference itself must be good"
    for dtype in ("int8", "int4"):
        got = _passing(tiny_engines[dtype], funcs)
        assert len(got) >= 0.95 * len(base), (dtype, len(got), len(base), sorted(base - got))


def test_quantized_weights_are_stored_in_their_bytes_and_say_so(
    tiny_engines: dict[str, LocalEngine],
) -> None:
    fp32, int8, int4 = (tiny_engines[d] for d in ("float32", "int8", "int4"))
    assert (int8.info.dtype, int4.info.dtype) == ("int8", "int4")
    assert int8.status()["dtype"] == "int8" and not quant.is_quantized(fp32.model)

    def linear_bytes(eng: LocalEngine, names: set[str]) -> int:
        mods = dict(eng.model.named_modules())
        return sum(quant.tensor_bytes(mods[n].weight) for n in names)

    linears = {n for n, m in fp32.model.named_modules() if isinstance(m, torch.nn.Linear)}
    packed4 = {n for n, m in int4.model.named_modules() if n in linears and quant.is_quantized(m)}
    assert len(packed4) >= len(linears) - 1  # all but a vocabulary that is not 16-aligned
    # int8: a byte per weight plus a scale per row; int4: half a byte plus a bf16 scale
    # and zero per 128 inputs.
    assert 0.24 < linear_bytes(int8, linears) / linear_bytes(fp32, linears) < 0.28
    assert 0.12 < linear_bytes(int4, packed4) / linear_bytes(fp32, packed4) < 0.145
    assert quant.weight_bytes(int4.model) < quant.weight_bytes(int8.model)
    assert quant.weight_bytes(int8.model) < quant.weight_bytes(fp32.model)


def test_a_quantized_engine_keeps_greedy_equal_across_cold_and_warm(
    tiny_engines: dict[str, LocalEngine],
) -> None:
    """Prefix reuse is exact at a quantized dtype too: warm answers what cold answers."""
    eng = tiny_engines["int4"]
    prompt = tiny.split_at_docstring(tiny.corpus_functions()["add"])[0]
    eng.reset_cache()
    cold = eng.generate(GenerationRequest(prompt=prompt, max_new_tokens=12))
    eng.generate(GenerationRequest(prompt=prompt[:-20], max_new_tokens=4))
    warm = eng.generate(GenerationRequest(prompt=prompt, max_new_tokens=12))
    assert warm.reused_tokens > 0 and warm.text == cold.text


def test_compiled_decode_is_greedy_equal_to_eager_at_the_same_dtype() -> None:
    """Compiled in the background while the eager loop serves; once ready, the engine
    decodes through it, token for token as eager (float32 and int8)."""
    from model_runtime import load_engine

    funcs = tiny.corpus_functions()
    prompts = [tiny.split_at_docstring(funcs[n])[0] for n in list(funcs)[:4]]
    for dtype in ("float32", "int8"):
        eager = load_engine("tiny", device="cpu", dtype=dtype, compiled_decode=False)
        comp = load_engine("tiny", device="cpu", dtype=dtype, compiled_decode=True)
        assert isinstance(eager, LocalEngine) and isinstance(comp, LocalEngine)
        assert eager.status()["fast_path"] == "off"
        # The eager path serves while the compilation runs (or has already finished).
        first = comp.generate(GenerationRequest(prompt=prompts[0], max_new_tokens=8))
        assert first.new_tokens > 0
        # Adopted only where it measured faster; equal either way.
        assert comp.wait_fast_path(600) in ("ready", "not faster"), comp.status()
        st = comp.status()
        assert st["compile_s"] > 0 and st["step_ms"]["eager"] > 0
        assert comp.use_compiled_step()
        for p in prompts:
            want = eager.generate(GenerationRequest(prompt=p, max_new_tokens=24))
            got = comp.generate(GenerationRequest(prompt=p, max_new_tokens=24))
            assert comp._step is not None, "the compiled step is in use"
            assert comp.last_tokens == eager.last_tokens and got.text == want.text, (dtype, p)


def test_a_failing_compilation_leaves_the_eager_loop(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from model_runtime import load_engine

    def broken(fn: object, **kw: object) -> object:
        raise RuntimeError("no C++ compiler")

    monkeypatch.setattr(torch, "compile", broken)
    eng = load_engine("tiny", device="cpu", compiled_decode=True)
    assert isinstance(eng, LocalEngine)
    assert eng.wait_fast_path(60) == "failed"
    assert "no C++ compiler" in eng.status()["fast_path_error"]
    assert "decoding eagerly" in caplog.text
    g = eng.generate(GenerationRequest(prompt="def add(a, b):\n", max_new_tokens=6))
    assert g.new_tokens > 0 and eng._step is None


# --- device and dtype selection ------------------------------------------------------


def _stub(monkeypatch: pytest.MonkeyPatch, cuda: bool, mps: bool) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(loader, "_has_mps", lambda: mps)


@pytest.mark.parametrize(
    ("cuda", "mps", "want"), [(True, True, "cuda"), (False, True, "mps"), (False, False, "cpu")]
)
def test_auto_device_prefers_cuda_then_mps_then_cpu(
    monkeypatch: pytest.MonkeyPatch, cuda: bool, mps: bool, want: str
) -> None:
    _stub(monkeypatch, cuda, mps)
    assert loader.resolve_device("auto") == want


def test_mps_when_asked_and_its_dtypes(monkeypatch: pytest.MonkeyPatch) -> None:
    _stub(monkeypatch, cuda=True, mps=True)
    assert loader.resolve_device("mps") == "mps"  # asked for: even where CUDA exists
    assert loader.resolve_dtype("auto", "mps") == "float16"
    with pytest.raises(ModelLoadError, match="int4 has no kernel"):
        loader.resolve_dtype("int4", "mps")
    _stub(monkeypatch, cuda=False, mps=False)
    with pytest.raises(ModelLoadError, match="no Apple GPU"):
        loader.resolve_device("mps")
    with pytest.raises(ModelLoadError, match="not one of"):
        loader.resolve_device("metal")


def test_auto_dtype_on_cpu_quantizes_large_models_only() -> None:
    assert quant.auto_cpu_variant(1_000_000) == ""  # tiny: launch-bound, float32
    assert quant.auto_cpu_variant(300_000_000) == quant.AUTO_CPU_VARIANT
    big = describe.describe("random:phi-1?layers=4", device="cpu", dtype="auto")
    assert big["dtype"] == quant.AUTO_CPU_VARIANT
    assert describe.describe("random:phi-1?layers=4", device="cpu", dtype="float32")["dtype"] == (
        "float32"
    )
    from model_runtime import load_engine

    eng = load_engine("random:phi-1?layers=1", device="cpu", compiled_decode=False)
    assert isinstance(eng, LocalEngine)
    assert eng.info.dtype == quant.AUTO_CPU_VARIANT and quant.is_quantized(eng.model)
    assert eng.generate(GenerationRequest(prompt="def f(x):", max_new_tokens=3)).new_tokens
    small = load_engine("tiny", device="cpu")
    assert small.info.dtype == "float32" and not quant.is_quantized(small.model)  # type: ignore[attr-defined]


def test_threads_are_physical_cores_for_models_that_are_not_small(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PHI_LSP_THREADS", raising=False)
    cores = physical_cores()
    assert 1 <= cores <= len(os.sched_getaffinity(0))
    big = torch.nn.Linear(6000, 6000)  # 36 M parameters
    assert not is_small(big)
    assert pick_threads(big, None) == cores
    assert pick_threads(torch.nn.Linear(10, 10), None) == 1
    monkeypatch.setenv("PHI_LSP_THREADS", "3")
    assert pick_threads(big, None) == 3


def test_bench_reports_the_variant_and_bound_share_from_quantized_bytes() -> None:
    """``phi-lsp bench --dtype int4 --json``: the real CLI, one JSON object."""
    p = subprocess.run(
        [sys.executable, "-m", "phi_lsp", "bench", "--model", "tiny", "--dtype", "int4"]
        + ["--prompt-tokens", "200", "--new-tokens", "8", "--runs", "1", "--json"],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "PHI_LSP_COMPILE": "0"},
    )
    assert p.returncode == 0, p.stderr[-2000:]
    out = json.loads(p.stdout)
    eng = out.get("engine", out)  # the suite's object, alone or keyed by suite
    assert eng["variant"] == eng["dtype"] == "int4"
    assert eng["fast_path"] == "off" and eng["load_ms"] > 0
    assert eng["bound_share"] > 0
    from model_runtime import load_engine
    from phi_lsp.bench.engine import decode_bytes_per_token

    # The roofline counts the bytes as stored: int4 linears at ~1/8 of float32 (tiny's
    # output layer, 16-unaligned, stays bfloat16).
    fp32 = load_engine("tiny", device="cpu", dtype="float32")
    context = eng["prompt_tokens"] + 4
    assert eng["decode_bytes_per_token"] < 0.6 * decode_bytes_per_token(fp32.model, context)  # type: ignore[attr-defined]
