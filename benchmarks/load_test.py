"""Load test: N simulated editors typing against one OpenAI-compatible server.

Each simulated editor is what one user's phi-lsp does: its own ``OpenAIEngine`` (own
HTTP connection), asking for a function body after a signature + docstring, reading the
suggestion for a moment, then typing on. A fraction of requests is superseded by a
keystroke while streaming (the editor cancels: the stream is closed). Bounded in count
and time, loopback only. Prints one JSON object: per N, p50/p95 latency of completed
requests, time to first token, errors, cancellations, throughput, and ratios to N=1
(the machine is shared and noisy; the ratios are the figure to read).

    python benchmarks/load_test.py --start-llama               # tiny model via llama.cpp
    python benchmarks/load_test.py --url http://127.0.0.1:8000/v1 --editors 1,4,16
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import threading
import time
import urllib.parse
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

from model_runtime.types import GenerationError, GenerationRequest  # noqa: E402
from phi_lsp.bench.stats import percentile  # noqa: E402

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
FALLBACK_PROMPTS = [
    'def add(a, b):\n    """Return the sum of a and b."""',
    'def is_even(n):\n    """Return True if n is even.\n\n    >>> is_even(4)\n    True\n    """',
    'def reverse(s):\n    """Return the string s reversed."""',
    'def maximum(xs):\n    """Return the largest element of the list xs."""',
]


def prompts() -> list[str]:
    """Signature + docstring of the tiny corpus functions (what an editor would send)."""
    try:
        from model_runtime.tiny import corpus_functions, split_at_docstring

        out = [split_at_docstring(src)[0].rstrip() for src in corpus_functions().values()]
        return [p for p in out if p] or FALLBACK_PROMPTS
    except Exception:
        return FALLBACK_PROMPTS


@dataclass
class Tally:
    latencies_ms: list[float] = field(default_factory=list)
    ttft_ms: list[float] = field(default_factory=list)
    new_tokens: int = 0
    cancelled: int = 0
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def editor(
    url: str, args: argparse.Namespace, seed: int, deadline: float, budget: list[int], t: Tally
) -> None:
    from model_runtime.backends.openai import OpenAIEngine

    rng = random.Random(seed)
    pool = prompts()
    try:
        eng = OpenAIEngine(url, remote_model=args.remote_model, api_key_env=args.api_key_env)
    except Exception as e:
        with t.lock:
            t.errors.append(f"load: {e}")
        return
    try:
        while time.monotonic() < deadline:
            with t.lock:
                if budget[0] <= 0:
                    return
                budget[0] -= 1
            # A keystroke during streaming supersedes the request (the editor cancels it).
            cancel_at = (
                time.monotonic() + rng.uniform(0.05, 0.3)
                if rng.random() < args.cancel_rate
                else None
            )
            req = GenerationRequest(
                prompt=rng.choice(pool),
                forced_prefix="\n    ",
                max_new_tokens=args.max_new_tokens,
                stop=("\ndef ", "\nclass ", "\nif __name__"),
            )
            t0 = time.perf_counter()
            try:
                gen = eng.generate(
                    req, (lambda c=cancel_at: c is not None and time.monotonic() >= c)
                )
            except GenerationError as e:
                with t.lock:
                    t.errors.append(str(e)[:200])
                time.sleep(0.1)
                continue
            ms = (time.perf_counter() - t0) * 1000
            with t.lock:
                if gen.finish_reason == "cancelled":
                    t.cancelled += 1
                else:
                    t.latencies_ms.append(ms)
                    t.ttft_ms.append(gen.prefill_ms)
                    t.new_tokens += gen.new_tokens
            time.sleep(rng.uniform(*args.think_s))  # reading the suggestion, typing on
    finally:
        eng.close()


def pct(xs: list[float], q: float) -> float | None:
    """``stats.percentile`` in ms to 0.1; None when nothing completed."""
    return round(percentile(xs, q), 1) if xs else None


def run_level(url: str, n: int, args: argparse.Namespace) -> dict[str, Any]:
    t = Tally()
    budget = [args.max_requests]
    t0 = time.monotonic()
    deadline = t0 + args.duration_s
    threads = [
        threading.Thread(target=editor, args=(url, args, 1000 * n + i, deadline, budget, t))
        for i in range(n)
    ]
    for th in threads:
        th.start()
    for th in threads:
        th.join(args.duration_s + args.timeout_s + 30)
    wall = time.monotonic() - t0
    done = len(t.latencies_ms)
    return {
        "editors": n,
        "requests": done + t.cancelled + len(t.errors),
        "completed": done,
        "cancelled": t.cancelled,
        "errors": len(t.errors),
        "error_samples": sorted(set(t.errors))[:3],
        "p50_ms": pct(t.latencies_ms, 0.5),
        "p95_ms": pct(t.latencies_ms, 0.95),
        "ttft_p50_ms": pct(t.ttft_ms, 0.5),
        "ttft_p95_ms": pct(t.ttft_ms, 0.95),
        "mean_new_tokens": round(t.new_tokens / done, 1) if done else None,
        "completed_per_s": round(done / wall, 2),
        "wall_s": round(wall, 1),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--url", help="a running server on loopback, e.g. http://127.0.0.1:8000/v1")
    src.add_argument(
        "--start-llama", action="store_true", help="serve the tiny model with llama.cpp here"
    )
    p.add_argument("--editors", default="1,4,16", help="comma-separated N values")
    p.add_argument("--duration-s", type=float, default=15.0, help="per N (bounded)")
    p.add_argument("--max-requests", type=int, default=400, help="per N (bounded)")
    p.add_argument("--max-new-tokens", type=int, default=48)
    p.add_argument("--cancel-rate", type=float, default=0.2)
    p.add_argument("--think-s", type=float, nargs=2, default=(0.2, 0.8), metavar=("MIN", "MAX"))
    p.add_argument("--timeout-s", type=float, default=60.0)
    p.add_argument("--warmup", type=int, default=8, help="unmeasured requests first")
    p.add_argument("--remote-model", default="")
    p.add_argument("--api-key-env", default="")
    p.add_argument("--n-threads", type=int, default=2, help="llama.cpp threads (--start-llama)")
    args = p.parse_args(argv)
    levels = [int(x) for x in args.editors.split(",") if x.strip()]
    if not levels or min(levels) < 1 or max(levels) > 64:
        p.error("--editors: N between 1 and 64")

    with ExitStack() as stack:
        server: dict[str, Any] = {}
        if args.start_llama:
            from model_runtime.remote import LlamaServer, ensure_tiny_gguf

            gguf = ensure_tiny_gguf()
            srv = stack.enter_context(
                LlamaServer(gguf, extra_args=("--n_threads", str(args.n_threads)))
            )
            url = srv.url
            server = {"engine": "llama-cpp-python server", "model": "tiny", "gguf": gguf.name}
        else:
            url = args.url
            host = urllib.parse.urlsplit(url).hostname or ""
            if host not in LOOPBACK:
                p.error(f"--url must be on loopback (127.0.0.1/localhost), got {host!r}")
            server = {"url": url}
        # Warm-up, not measured: a fresh llama.cpp server answered its first request in
        # ~6 s and the next few slowly (measured here); a few full requests absorb that.
        from model_runtime.backends.openai import OpenAIEngine

        eng = OpenAIEngine(url, remote_model=args.remote_model, api_key_env=args.api_key_env)
        server["model_id"] = eng.model
        t0 = time.perf_counter()
        for p in prompts()[: args.warmup]:
            eng.generate(GenerationRequest(prompt=p, max_new_tokens=args.max_new_tokens))
        server["warmup_s"] = round(time.perf_counter() - t0, 1)
        eng.close()
        results = []
        for n in levels:
            print(f"load_test: {n} editor(s) for {args.duration_s:g} s", file=sys.stderr)
            results.append(run_level(url, n, args))
    base = next((r for r in results if r["editors"] == 1 and r["p50_ms"]), None)
    for r in results:
        if base and r["p50_ms"] and r["p95_ms"]:
            r["p50_ratio_vs_1"] = round(r["p50_ms"] / base["p50_ms"], 2)
            r["p95_ratio_vs_1"] = round(r["p95_ms"] / base["p95_ms"], 2)
    out = {
        "benchmark": "load_test",
        "server": server,
        "settings": {
            "duration_s": args.duration_s,
            "max_requests": args.max_requests,
            "max_new_tokens": args.max_new_tokens,
            "cancel_rate": args.cancel_rate,
            "think_s": list(args.think_s),
        },
        "results": results,
        "note": "latency = request sent to last token of a completed (not cancelled) "
        "suggestion; ratios to N=1 are the figure to compare on a shared machine",
    }
    print(json.dumps(out))
    return 0 if all(r["errors"] == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
