"""Engine speed figures: cold vs warm (prefix reuse), prefill/decode rates, our loop vs
``model.generate``, and prompt-lookup speculative decoding. Each function returns a
dict; ``phi-lsp bench`` prints them as one JSON object.

Prompts are real Python (standard-library sources), not random ids: prefix reuse and
prompt lookup behave on code as they do in an editor.
"""

from __future__ import annotations

import re
import sysconfig
import time
from pathlib import Path
from typing import Any

from model_runtime.types import Engine, GenerationRequest
from phi_lsp.bench.stats import p50, p95, ratio

# Modules whose source makes the bench prompts (the first N tokens of their text).
_SOURCES = ("argparse.py", "json/encoder.py", "textwrap.py", "dataclasses.py", "inspect.py")


def code_text(min_chars: int = 200_000) -> str:
    """Real Python source from the standard library, at least ``min_chars`` long if possible."""
    lib = Path(sysconfig.get_paths()["stdlib"])
    parts: list[str] = []
    for name in _SOURCES:
        try:
            parts.append((lib / name).read_text(encoding="utf-8"))
        except OSError:
            continue
        if sum(map(len, parts)) >= min_chars:
            break
    if not parts:  # a stripped Python: fall back to this package's own source
        parts = [p.read_text(encoding="utf-8") for p in Path(__file__).parent.glob("*.py")]
    return "\n\n".join(parts)


def prompt_of(engine: Any, n_tokens: int, offset_tokens: int = 0, extra: int = 0) -> str:
    """The text of ``n_tokens`` (+``extra``) tokens of code, starting ``offset_tokens`` in."""
    tok = engine.tokenizer
    ids = tok.encode(code_text(), add_special_tokens=False)
    window = ids[offset_tokens : offset_tokens + n_tokens + extra]
    return tok.decode(window, clean_up_tokenization_spaces=False)


_DOCSTRING_END = re.compile(r'\n[ \t]*def [^\n]*:\n[ \t]+"""(?:[^"]|"(?!""))*"""')


def body_prompts(engine: Any, n_tokens: int, count: int) -> list[str]:
    """Prompts as the completion pipeline makes them: up to ``n_tokens`` tokens of code
    ending right after a function's docstring (the model writes the body next).
    Spread over the code text so that they differ."""
    text = code_text()
    ends = [m.end() for m in _DOCSTRING_END.finditer(text)]
    ends = [e for e in ends if e > n_tokens * 2]  # enough code before it
    if not ends:
        return [prompt_of(engine, n_tokens)]
    picks = [ends[(i * len(ends)) // count] for i in range(count)]
    tok = engine.tokenizer
    out = []
    for end in picks:
        ids = tok.encode(text[max(0, end - n_tokens * 8) : end], add_special_tokens=False)
        out.append(tok.decode(ids[-n_tokens:], clean_up_tokenization_spaces=False))
    return out


def engine_bench(
    engine: Engine,
    *,
    prompt_tokens: int = 1000,
    new_tokens: int = 16,
    runs: int = 3,
    typed_tokens: int = 3,
    compare_generate: bool = True,
) -> dict[str, Any]:
    """Cold (empty cache) and warm (same prompt + ``typed_tokens`` typed) latency; decode
    and prefill rates; the same request through ``model.generate`` for comparison."""
    reset = getattr(engine, "reset_cache", None)
    if hasattr(engine, "tokenizer"):
        prompt = prompt_of(engine, prompt_tokens)
        typed = prompt_of(engine, prompt_tokens, extra=typed_tokens)
    else:  # engines without a tokenizer of ours (replay, openai): characters stand in
        text = code_text()
        prompt, typed = text[: prompt_tokens * 3], text[: (prompt_tokens + typed_tokens) * 3]
    # Plain greedy without speculation: the figures of the loop itself.
    saved_spec = getattr(engine, "speculative", None)
    if saved_spec is not None:
        engine.speculative = False  # type: ignore[attr-defined]
    cold_ms, warm_ms, prefill_tok_s, decode_tok_s, gen_ms = [], [], [], [], []
    cold_prefill_ms, warm_prefill_ms = [], []
    cold = warm = None
    try:
        # Untimed warm-up of both paths: first-touch page faults of weights and buffers
        # would otherwise be charged to whichever runs first.
        engine.generate(GenerationRequest(prompt=typed[:200], max_new_tokens=2))
        if compare_generate and hasattr(engine, "model"):
            _generate_ms(engine, typed[:200], 2)
        compare = compare_generate and hasattr(engine, "model")
        for run in range(runs):
            # Alternate who goes first: load from other processes drifts within a run.
            if compare and run % 2 == 1:
                gen_ms.append(_generate_ms(engine, prompt, new_tokens))
            if reset is not None:
                reset()
            cold = engine.generate(GenerationRequest(prompt=prompt, max_new_tokens=new_tokens))
            warm = engine.generate(GenerationRequest(prompt=typed, max_new_tokens=new_tokens))
            cold_ms.append(cold.total_ms)
            cold_prefill_ms.append(cold.prefill_ms)
            warm_prefill_ms.append(warm.prefill_ms)
            warm_ms.append(warm.total_ms)
            if cold.prefill_ms:
                prefill_tok_s.append(cold.prompt_tokens / cold.prefill_ms * 1000)
            if cold.decode_ms and cold.new_tokens > 1:
                # Each token after the first costs one forward of one token.
                decode_tok_s.append((cold.new_tokens - 1) / cold.decode_ms * 1000)
            if compare and run % 2 == 0:
                gen_ms.append(_generate_ms(engine, prompt, new_tokens))
    finally:
        if saved_spec is not None:
            engine.speculative = saved_spec  # type: ignore[attr-defined]
    assert cold is not None and warm is not None
    info = engine.info
    out: dict[str, Any] = {
        "model": info.spec,
        "backend": info.backend,
        "device": info.device,
        "dtype": info.dtype,
        "params": info.params,
        "threads": getattr(engine, "threads", 0) or _threads(),
        "runs": runs,
        "prompt_tokens": cold.prompt_tokens,
        "new_tokens": cold.new_tokens,
        "typed_tokens": warm.prompt_tokens - cold.prompt_tokens,
        "reused_tokens": warm.reused_tokens,
        **_cold_vs_warm(cold_ms, warm_ms),
        "cold_p95_ms": p95(cold_ms),
        "warm_p95_ms": p95(warm_ms),
        "generate_p95_ms": p95(gen_ms) if gen_ms else None,
        # Prefix reuse by itself: the prompt part of warm vs cold (decode is the same work).
        **_cold_vs_warm(cold_prefill_ms, warm_prefill_ms, "_prefill"),
        "prefill_tok_s": p50(prefill_tok_s),
        "decode_tok_s": p50(decode_tok_s),
        "generate_ms": p50(gen_ms) if gen_ms else None,
        "ours_over_generate": ratio(p50(cold_ms), p50(gen_ms)) if gen_ms else None,
        # Best of the runs: on a shared machine the minimum is the least disturbed figure.
        "cold_best_ms": round(min(cold_ms), 2),
        "warm_best_ms": round(min(warm_ms), 2),
        "generate_best_ms": round(min(gen_ms), 2) if gen_ms else None,
        "ours_over_generate_best": ratio(min(cold_ms), min(gen_ms)) if gen_ms else None,
    }
    if hasattr(engine, "model") and out["decode_tok_s"]:
        out.update(_bound(engine, 1000 / out["decode_tok_s"], cold.prompt_tokens + new_tokens // 2))
    return out


def _cold_vs_warm(cold: list[float], warm: list[float], part: str = "") -> dict[str, Any]:
    """Medians of the cold and warm runs and their ratio (``part``: "" the whole
    request, "_prefill" its prompt part)."""
    return {
        f"cold{part}_ms": p50(cold),
        f"warm{part}_ms": p50(warm),
        f"warm{part}_over_cold{part}": ratio(p50(warm), p50(cold)),
    }


def decode_bytes_per_token(model: Any, context: int) -> int:
    """Bytes one decode step must read: every weight once, as stored (int8/int4 at their
    quantized size; the input embedding: one row) plus the keys and values of
    ``context`` cached positions."""
    from model_runtime.quant import tensor_bytes

    emb = model.get_input_embeddings().weight
    total = sum(tensor_bytes(p) for p in model.parameters())
    total -= emb.numel() * emb.element_size() - emb.shape[1] * emb.element_size()
    cfg = model.config
    kv = 2 * cfg.num_hidden_layers * cfg.hidden_size * context * emb.element_size()
    return int(total + kv)


def memory_bandwidth_gb_s(device: str = "cpu", mib: int = 256) -> float:
    """Read bandwidth as a reduction over a large tensor sees it (best of 5), GB/s."""
    import torch

    x = torch.ones(mib * (1 << 20) // 4, dtype=torch.float32, device=device)
    best = float("inf")
    for _ in range(5):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        x.sum().item()
        best = min(best, time.perf_counter() - t0)
    return round(x.numel() * 4 / best / 1e9, 2)


def _bound(engine: Any, ms_per_token: float, context: int) -> dict[str, Any]:
    """How close decode runs to the memory-bandwidth roofline (1.0 = at the bound)."""
    if not ms_per_token:
        return {}
    need = decode_bytes_per_token(engine.model, context)
    peak = memory_bandwidth_gb_s(str(engine.model.device))
    got = need / (ms_per_token / 1000) / 1e9
    return {
        "decode_bytes_per_token": need,
        "mem_bandwidth_gb_s": peak,
        "decode_gb_s": round(got, 2),
        "bound_share": ratio(got, peak),
    }


def _generate_ms(engine: Any, prompt: str, new_tokens: int) -> float:
    """The same greedy request through transformers' ``generate`` (fresh cache each time)."""
    import torch

    ids = engine.tokenizer.encode(prompt, add_special_tokens=False)
    budget = max(1, int(engine.info.context_length) - new_tokens)
    x = torch.tensor([ids[-budget:]], device=engine.model.device)
    from model_runtime.threads import torch_threads

    t0 = time.perf_counter()
    # Same intra-op threads as our loop: compare the loops, not the thread settings.
    with torch.inference_mode(), torch_threads(getattr(engine, "threads", 0)):
        engine.model.generate(
            x,
            attention_mask=torch.ones_like(x),
            max_new_tokens=new_tokens,
            do_sample=False,
            pad_token_id=engine.tokenizer.eos_token_id,
        )
    return (time.perf_counter() - t0) * 1000


def speculative_bench(
    engine: Any,
    *,
    prompt_tokens: int = 1000,
    new_tokens: int = 32,
    prompts: int = 3,
) -> dict[str, Any]:
    """Prompt-lookup speculative decoding on real code prompts (code up to the end of a
    docstring): acceptance rate, decode speed-up over plain greedy, and whether the
    outputs are identical (they must be)."""
    if not hasattr(engine, "speculative"):
        return {"error": "only the local engine decodes speculatively"}
    saved = engine.speculative
    plain_ms: list[float] = []
    spec_ms: list[float] = []
    drafted, accepted, forwards, tokens, same = 0, 0, 0, 0, True
    try:
        for prompt in body_prompts(engine, prompt_tokens, prompts):
            req = GenerationRequest(prompt=prompt, max_new_tokens=new_tokens)
            outs = []
            for spec in (False, True):
                engine.speculative = spec
                engine.reset_cache()
                engine.generate(req)  # warm the prompt: measure decoding only
                g = engine.generate(req)
                outs.append(g.text)
                (spec_ms if spec else plain_ms).append(g.decode_ms)
                if spec:
                    drafted += engine.last_stats.get("drafted", 0)
                    accepted += engine.last_stats.get("accepted", 0)
                    forwards += engine.last_stats.get("forwards", 1) - 1  # not the prefill
                    tokens += g.new_tokens
            same = same and outs[0] == outs[1]
    finally:
        engine.speculative = saved
        engine.reset_cache()
    return {
        "model": engine.info.spec,
        "threads": engine.threads or _threads(),
        "prompts": prompts,
        "prompt_tokens": prompt_tokens,
        "new_tokens": new_tokens,
        "draft_tokens": engine.draft_tokens,
        "drafted": drafted,
        "accepted": accepted,
        "acceptance": ratio(accepted, drafted),
        "forwards_per_token": ratio(forwards, tokens),
        "plain_decode_ms": round(sum(plain_ms), 1),
        "spec_decode_ms": round(sum(spec_ms), 1),
        "speedup": ratio(sum(plain_ms), sum(spec_ms)),
        "identical_output": same,
    }


def _threads() -> int:
    try:
        import torch

        return torch.get_num_threads()
    except ImportError:
        return 0


def run(args: Any) -> dict[str, Any]:
    """``phi-lsp bench --suite engine``: load ``args.model`` and measure it."""
    from model_runtime.loader import load_engine

    t0 = time.perf_counter()
    engine = load_engine(args.model, device=args.device, dtype=args.dtype)
    load_ms = (time.perf_counter() - t0) * 1000
    # A compiled decode step (CPU, large models) is built in the background: measure the
    # engine as it runs once that is settled, and say which path it took.
    wait = getattr(engine, "wait_fast_path", None)
    status = getattr(engine, "status", None)
    if wait is not None:
        wait()
    try:
        out = engine_bench(
            engine,
            prompt_tokens=args.prompt_tokens,
            new_tokens=args.new_tokens,
            runs=args.runs,
        )
        out["load_ms"] = round(load_ms, 1)
        if status is not None:
            st = status()
            out["variant"] = st["dtype"]  # what --dtype (auto included) chose
            out["fast_path"] = st["fast_path"]
            out["compile_s"] = st["compile_s"]
            out["step_ms"] = st["step_ms"]
        if hasattr(engine, "speculative"):
            out["speculative"] = speculative_bench(
                engine,
                prompt_tokens=args.prompt_tokens,
                new_tokens=max(args.new_tokens, 32),
                prompts=max(1, min(args.runs, 3)),
            )
        return out
    finally:
        engine.close()
