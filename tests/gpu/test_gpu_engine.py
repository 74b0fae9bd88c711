"""The engine on CUDA: ``random:phi-1`` (full Phi-1 shape) in fp16.

Skipped without a CUDA GPU (conftest marks ``gpu`` tests). To run it: a machine with
an NVIDIA GPU and a CUDA build of torch, then
``.venv/bin/python -m pytest tests/gpu/test_gpu_engine.py -m gpu -s``.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def cuda_engine():  # type: ignore[no-untyped-def]
    import torch

    if not torch.cuda.is_available():  # also when run with -p no:conftest
        pytest.skip("needs a CUDA GPU (torch.cuda.is_available() is False)")
    from model_runtime import load_engine

    eng = load_engine("random:phi-1", device="cuda", dtype="float16")
    yield eng
    eng.close()


def _reference(eng, prompt: str, n: int) -> list[int]:  # type: ignore[no-untyped-def]
    import torch

    ids = eng.tokenizer.encode(prompt, add_special_tokens=False)
    x = torch.tensor([ids], device=eng.model.device)
    with torch.inference_mode():
        out = eng.model.generate(
            x, attention_mask=torch.ones_like(x), max_new_tokens=n, do_sample=False
        )
    return out[0, len(ids) :].tolist()


def _same_or_tie(eng, prompt: str, ours: list[int], ref: list[int]) -> None:  # type: ignore[no-untyped-def]
    """Equal token for token, or the first difference sits on a numerical tie: in fp16
    a prefill of 4 new tokens on a cached prefix and one of the whole prompt round
    differently, and random weights have near-equal top logits now and then."""
    import torch

    if ours == ref:
        return
    i = next(j for j, (a, b) in enumerate(zip(ours, ref, strict=False)) if a != b)
    ids = eng.tokenizer.encode(prompt, add_special_tokens=False) + ref[:i]
    with torch.inference_mode():
        logits = eng.model(torch.tensor([ids], device=eng.model.device)).logits[0, -1].float()
    gap = float(logits[ref[i]] - logits[ours[i]])
    assert gap < 0.05, f"token {i} differs from generate() by a logit gap of {gap:.3f}"


def test_fp16_greedy_equals_generate_cold_and_warm(cuda_engine) -> None:  # type: ignore[no-untyped-def]
    from model_runtime.types import GenerationRequest
    from phi_lsp.bench.engine import prompt_of

    eng = cuda_engine
    assert (eng.info.device, eng.info.dtype) == ("cuda", "float16")
    prompt = prompt_of(eng, 500)
    typed = prompt_of(eng, 500, extra=4)
    for speculative in (False, True):
        eng.speculative = speculative
        eng.reset_cache()
        eng.generate(GenerationRequest(prompt=prompt, max_new_tokens=32))
        _same_or_tie(eng, prompt, eng.last_tokens, _reference(eng, prompt, 32))
        g = eng.generate(GenerationRequest(prompt=typed, max_new_tokens=32))
        assert g.reused_tokens >= 499
        _same_or_tie(eng, typed, eng.last_tokens, _reference(eng, typed, 32))
    eng.speculative = True


def test_fp16_speed_is_reported(cuda_engine) -> None:  # type: ignore[no-untyped-def]
    from phi_lsp.bench.engine import engine_bench, speculative_bench

    r = engine_bench(cuda_engine, prompt_tokens=1000, new_tokens=64, runs=3)
    s = speculative_bench(cuda_engine, prompt_tokens=1000, new_tokens=64, prompts=3)
    print(
        f"\nrandom:phi-1 fp16 on {r['device']}: decode {r['decode_tok_s']} tok/s, "
        f"prefill {r['prefill_tok_s']} tok/s, cold {r['cold_ms']} ms, warm {r['warm_ms']} ms, "
        f"ours/generate {r['ours_over_generate']}, speculative speed-up {s['speedup']} "
        f"(identical to plain greedy: {s['identical_output']}; fp16 ties may differ)"
    )
    assert r["decode_tok_s"] > 0
    assert r["warm_over_cold"] < 1.0


def test_cuda_graph_decode_matches_eager_and_is_not_slower(cuda_engine) -> None:  # type: ignore[no-untyped-def]
    from model_runtime.engine import LocalEngine
    from model_runtime.types import GenerationRequest
    from phi_lsp.bench.engine import prompt_of

    graph = cuda_engine
    assert graph.cuda_graphs, "CUDA-graph decoding should be on by default on CUDA"
    eager = LocalEngine(
        graph.model, graph.tokenizer, graph.info, cuda_graphs=False, speculative=False
    )
    graph.speculative = False
    try:
        req = GenerationRequest(prompt=prompt_of(graph, 500), max_new_tokens=64)
        ms = {}
        for name, eng in (("eager", eager), ("graph", graph)):
            eng.reset_cache()
            eng.generate(req)  # prefill; the second run decodes from the cached prompt
            g = eng.generate(req)
            ms[name] = g.decode_ms / max(1, g.new_tokens - 1)
        _same_or_tie(graph, req.prompt, graph.last_tokens, eager.last_tokens)
        print(f"\ndecode ms/token: eager {ms['eager']:.2f}, CUDA graph {ms['graph']:.2f}")
        assert ms["graph"] <= ms["eager"] * 1.1
    finally:
        graph.speculative = True
        eager.close()
