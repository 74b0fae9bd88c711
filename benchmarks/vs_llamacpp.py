"""phi-lsp's engine side by side with llama.cpp on the same weights, in one run.

    .venv/bin/python benchmarks/vs_llamacpp.py [--model 'random:phi-1?layers=4'] [--runs 5]

Saves the model spec with ``save_pretrained``, converts it with llama.cpp's own converter
to GGUF f32 and q8_0 (cached), then measures, alternating engine order every round:

- llama.cpp through llama-cpp-python (``scripts/setup-llama.sh``), in-process in a child
  interpreter of its own venv, fed the same token ids;
- our engine at each dtype (float32, int8, int4), eager and compiled decode.

cold = empty cache, the prompt (1,000 tokens of real code) + 16 new tokens; warm = the
same prompt plus 3 typed tokens (both engines reuse the cached prefix). Prints one JSON
object: p50/best per engine, ours/llama.cpp ratios, which variant is best, and with
``--profile`` the top operators of the best variant's warm request (torch.profiler).

On a shared machine the absolute figures drift with the load; the ratios within one run
(alternated) are the figures to read.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import sysconfig
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# The child: llama.cpp in-process, one JSON request per line on stdin.
_LLAMA_DRIVER = r"""
import json, sys, time
from llama_cpp import Llama
path, threads = sys.argv[1], int(sys.argv[2])
t0 = time.perf_counter()
llm = Llama(model_path=path, n_ctx=2048, n_batch=512, n_threads=threads,
            n_threads_batch=threads, verbose=False)
print(json.dumps({"load_s": round(time.perf_counter() - t0, 2)}), flush=True)
for line in sys.stdin:
    req = json.loads(line)
    if req.get("cold"):
        llm.reset()  # forget the evaluated prefix: the whole prompt is evaluated again
    t0 = time.perf_counter()
    out = llm.create_completion(prompt=req["ids"], max_tokens=req["n"], temperature=0.0,
                                top_k=1, top_p=1.0, repeat_penalty=1.0)
    ms = (time.perf_counter() - t0) * 1000
    print(json.dumps({"ms": ms, "new_tokens": out["usage"]["completion_tokens"],
                      "text": out["choices"][0]["text"]}), flush=True)
"""


class LlamaChild:
    """llama-cpp-python in its own interpreter (its venv), driven over pipes."""

    def __init__(self, python: Path, gguf: Path, threads: int) -> None:
        self.proc = subprocess.Popen(
            [str(python), "-c", _LLAMA_DRIVER, str(gguf), str(threads)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.load_s = float(self._read()["load_s"])

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            err = self.proc.stderr.read() if self.proc.stderr else ""
            raise RuntimeError(f"llama.cpp child exited: {err[-2000:]}")
        return json.loads(line)

    def generate(self, ids: list[int], n: int, cold: bool) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"ids": ids, "n": n, "cold": cold}) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()  # our own child, by its handle
            self.proc.wait()


class Ours:
    """One of our variants: an engine (dtype x eager/compiled) on a shared model."""

    def __init__(self, engine: Any, load_s: float) -> None:
        self.engine = engine
        self.load_s = load_s

    def generate(self, text: str, n: int, cold: bool) -> dict[str, Any]:
        from model_runtime.types import GenerationRequest

        if cold:
            self.engine.reset_cache()
        g = self.engine.generate(GenerationRequest(prompt=text, max_new_tokens=n))
        return {"ms": g.total_ms, "new_tokens": g.new_tokens, "text": g.text}


def code_ids(tokenizer: Any, n: int) -> list[int]:
    """``n`` token ids of real Python (standard-library source)."""
    lib = Path(sysconfig.get_paths()["stdlib"])
    text = "\n\n".join(
        (lib / f).read_text(encoding="utf-8") for f in ("argparse.py", "textwrap.py")
    )
    # ~4 characters per token at most: encode only what the prompt needs.
    return list(tokenizer.encode(text[: 8 * n], add_special_tokens=False))[:n]


def gguf_files(spec: str, kinds: list[str], log: Any) -> tuple[dict[str, Path], Any, Any]:
    """The spec saved with save_pretrained and converted to each GGUF kind (cached under
    the llama.cpp directory); also returns the float32 model and tokenizer."""
    from model_runtime.loader import load_model_and_tokenizer
    from model_runtime.remote import convert_to_gguf, llama_dir

    model, tok, _ = load_model_and_tokenizer(spec, device="cpu", dtype="float32")
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", spec)
    base = llama_dir() / "bench" / slug
    hf = base / "hf"
    if not (hf / "config.json").is_file():
        log(f"saving {spec} to {hf}")
        model.save_pretrained(hf)
        tok.save_pretrained(hf)
    out = {}
    for kind in kinds:
        path = base / f"{slug}.{kind}.gguf"
        if not path.is_file():
            log(f"converting to GGUF {kind}")
            convert_to_gguf(hf, path, outtype=kind)
        out[kind] = path
    return out, model, tok


def p50(xs: list[float]) -> float:
    return round(statistics.median(xs), 1) if xs else 0.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="random:phi-1?layers=4")
    ap.add_argument("--prompt-tokens", type=int, default=1000)
    ap.add_argument("--new-tokens", type=int, default=16)
    ap.add_argument("--typed-tokens", type=int, default=3)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0, help="default: physical cores")
    ap.add_argument("--dtypes", default="float32,int8,int4")
    ap.add_argument("--modes", default="eager,compiled")
    ap.add_argument("--llama", default="f32,q8_0", help="GGUF kinds to run")
    ap.add_argument("--profile", action="store_true", help="profile the best variant's warm")
    args = ap.parse_args()

    def log(msg: str) -> None:
        print(f"vs_llamacpp: {msg}", file=sys.stderr, flush=True)

    from model_runtime.engine import LocalEngine
    from model_runtime.remote import llama_dir, llama_missing
    from model_runtime.threads import physical_cores

    threads = args.threads or physical_cores()
    kinds = [k for k in args.llama.split(",") if k]
    missing = llama_missing() if kinds else ""
    if missing:
        print(json.dumps({"error": missing}))
        return 1
    ggufs, fp32_model, tok = gguf_files(args.model, kinds, log)
    ids = code_ids(tok, args.prompt_tokens + args.typed_tokens)
    if len(ids) < args.prompt_tokens + args.typed_tokens:
        raise SystemExit("not enough code text for the prompt")
    cold_ids, warm_ids = ids[: args.prompt_tokens], ids
    cold_text, warm_text = tok.decode(cold_ids), tok.decode(warm_ids)
    if tok.encode(warm_text, add_special_tokens=False) != warm_ids:
        log("note: the prompt text does not round-trip to the same ids")

    engines: dict[str, Any] = {}
    for kind, path in ggufs.items():
        log(f"starting llama.cpp {kind}")
        engines[f"llama.cpp {kind}"] = LlamaChild(llama_dir() / "venv/bin/python", path, threads)
    from model_runtime.loader import load_model_and_tokenizer

    del fp32_model  # each dtype is loaded the way a user's --dtype loads it
    modes = [m for m in args.modes.split(",") if m]
    for dtype in [d for d in args.dtypes.split(",") if d]:
        t0 = time.perf_counter()
        model, tok_d, info = load_model_and_tokenizer(args.model, device="cpu", dtype=dtype)
        load_s = time.perf_counter() - t0
        for mode in modes:
            eng = LocalEngine(
                model,
                tok_d,
                info,
                speculative=False,  # the loop itself, as llama.cpp runs it
                threads=threads,
                compiled_decode=mode == "compiled",
            )
            if mode == "compiled":
                log(f"compiling the {dtype} decode step")
                eng.wait_fast_path()
                log(f"{dtype} compiled: {eng.status()}")
                if not eng.use_compiled_step():  # measured even where not faster
                    continue
            engines[f"ours {dtype} {mode}"] = Ours(eng, load_s)

    names = list(engines)
    cold: dict[str, list[float]] = {n: [] for n in names}
    warm: dict[str, list[float]] = {n: [] for n in names}
    new_tokens: dict[str, int] = {}
    for name in names:  # untimed warm-up: first-touch page faults, lazy init
        e = engines[name]
        e.generate(
            cold_ids[:64] if name.startswith("llama") else tok.decode(cold_ids[:64]), 2, True
        )
    for run in range(args.runs):
        # Rotate who goes first: load from other processes drifts within a run.
        order = names[run % len(names) :] + names[: run % len(names)]
        for name in order:
            e = engines[name]
            is_llama = name.startswith("llama")
            c = e.generate(cold_ids if is_llama else cold_text, args.new_tokens, True)
            w = e.generate(warm_ids if is_llama else warm_text, args.new_tokens, False)
            cold[name].append(c["ms"])
            warm[name].append(w["ms"])
            new_tokens[name] = c["new_tokens"]
        log(f"round {run + 1}/{args.runs} done")

    result: dict[str, Any] = {
        "model": args.model,
        "prompt_tokens": args.prompt_tokens,
        "new_tokens": args.new_tokens,
        "typed_tokens": args.typed_tokens,
        "threads": threads,
        "runs": args.runs,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "engines": {},
    }
    for name in names:
        e = engines[name]
        row: dict[str, Any] = {
            "cold_p50_ms": p50(cold[name]),
            "warm_p50_ms": p50(warm[name]),
            "cold_best_ms": round(min(cold[name]), 1),
            "warm_best_ms": round(min(warm[name]), 1),
            "new_tokens": new_tokens.get(name),
            "load_s": round(e.load_s, 2),
        }
        if isinstance(e, Ours):
            st = e.engine.status()
            row.update(fast_path=st["fast_path"], compile_s=st["compile_s"], step_ms=st["step_ms"])
        result["engines"][name] = row
    ours = [n for n in names if n.startswith("ours")]
    ref_warm = result["engines"].get("llama.cpp q8_0", {}).get("warm_p50_ms")
    ref_cold = result["engines"].get("llama.cpp f32", {}).get("cold_p50_ms")
    ratios: dict[str, Any] = {}
    for n in ours:
        r = result["engines"][n]
        ratios[n] = {
            "warm_over_llama_q8_0": round(r["warm_p50_ms"] / ref_warm, 3) if ref_warm else None,
            "cold_over_llama_f32": round(r["cold_p50_ms"] / ref_cold, 3) if ref_cold else None,
        }
    result["ratios"] = ratios
    if ours:
        best_warm = min(ours, key=lambda n: result["engines"][n]["warm_p50_ms"])
        best_cold = min(ours, key=lambda n: result["engines"][n]["cold_p50_ms"])
        result["best_warm"] = {"engine": best_warm, **ratios[best_warm]}
        result["best_cold"] = {"engine": best_cold, **ratios[best_cold]}
        result["goals"] = {
            "warm_le_llama_q8_0": bool(ref_warm)
            and result["engines"][best_warm]["warm_p50_ms"] <= ref_warm,
            "cold_le_llama_f32": bool(ref_cold)
            and result["engines"][best_cold]["cold_p50_ms"] <= ref_cold,
        }
        if args.profile:
            result["profile_warm"] = profile(engines[best_warm].engine, cold_text, warm_text, args)
    for e in engines.values():
        if isinstance(e, LlamaChild):
            e.close()
    print(json.dumps(result))
    return 0


def profile(engine: Any, cold_text: str, warm_text: str, args: Any) -> dict[str, Any]:
    """Top operators (self CPU time) of one warm request."""
    from torch.profiler import ProfilerActivity, profile

    from model_runtime.types import GenerationRequest

    engine.reset_cache()
    engine.generate(GenerationRequest(prompt=cold_text, max_new_tokens=args.new_tokens))
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        g = engine.generate(GenerationRequest(prompt=warm_text, max_new_tokens=args.new_tokens))
    rows = sorted(prof.key_averages(), key=lambda r: r.self_cpu_time_total, reverse=True)
    total = sum(r.self_cpu_time_total for r in rows) or 1
    return {
        "total_ms": round(g.total_ms, 1),
        "top_ops": [
            {
                "op": r.key,
                "self_ms": round(r.self_cpu_time_total / 1000, 2),
                "share": round(r.self_cpu_time_total / total, 3),
                "calls": r.count,
            }
            for r in rows[:12]
        ],
    }


if __name__ == "__main__":
    sys.exit(main())
