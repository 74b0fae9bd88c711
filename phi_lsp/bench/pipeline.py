"""``phi-lsp bench --suite pipeline``: what the pipeline costs around the model.

Two figures:

- ``overhead``: per keystroke on a 5,000-line file, the incremental reparse +
  context + prompt + stop rules + clean-up, as a share of one ``--new-tokens``
  generation of ``--model`` (goal: < 5 % of a 16-token ``tiny`` generation);
  a full reparse is timed too, to show what incremental parsing saves.
- ``replay_stdlib``: stop rules fed a perfect model (``replay:`` of the true rest of
  the file) on every function of a few standard-library modules; the share whose
  completed function equals the original (``ast.dump``).
"""

from __future__ import annotations

import argparse
import ast
import importlib
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from phi_lsp import context as context_mod
from phi_lsp import functions
from phi_lsp import prompt as prompt_mod
from phi_lsp.bench.stats import p50
from phi_lsp.documents import Document
from phi_lsp.postprocess import Stopper

REPLAY_MODULES = (
    "textwrap",
    "shlex",
    "fractions",
    "statistics",
    "difflib",
    "argparse",
    "calendar",
    "heapq",
    "json.decoder",
    "string",
    "configparser",
    "pathlib",
)
MAX_BODY_TOKENS = 1000  # replay pieces; longer bodies would only measure max_new_tokens


def _module_source(name: str) -> str:
    return Path(importlib.import_module(name).__file__).read_bytes().decode("utf-8")  # type: ignore[arg-type]


def _function_ast(source: str, def_line: int) -> str | None:
    """``ast.dump`` (no locations) of the def at 0-based ``def_line``, decorators
    included; None when there is none or it does not parse."""
    doc = Document(source)
    fn = next((f for f in functions.in_file(doc) if f.def_line == def_line), None)
    if fn is None or fn.src is not None:
        return None
    text = doc.text[doc.line_start(fn.first_line) : doc.index_at_byte(fn.node.end_byte)]
    if text[:1] in (" ", "\t"):  # a method: parse it as the body of a block
        text = "if 1:\n" + text
    try:
        return ast.dump(ast.parse(text), include_attributes=False)
    except SyntaxError:
        return None


def replay_agreement(modules: tuple[str, ...] = REPLAY_MODULES) -> dict[str, Any]:
    """For every function: drop its body (after the docstring), complete it with
    ``replay:`` of the original text from there on, and compare with the original."""
    from model_runtime.backends.replay import ReplayEngine, pieces
    from phi_lsp.completion import Completer
    from phi_lsp.settings import Settings

    settings = Settings(max_new_tokens=1024)
    total = equal = exact = skipped = 0
    failures: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        rest_path = Path(tmp) / "rest.txt"
        for mod in modules:
            source = _module_source(mod)
            doc = Document(source)
            for fn in functions.in_file(doc):
                slot = functions.body_slot(doc, fn)
                rest = source[slot.start :].lstrip()
                body_len = len(pieces(source[slot.start : slot.end]))
                if slot.end <= slot.start or body_len > MAX_BODY_TOKENS:
                    skipped += 1
                    continue
                rest_path.write_text(rest, encoding="utf-8")
                completer = Completer(ReplayEngine(rest_path), settings)
                rec = completer.fill(doc, fn)
                total += 1
                new = source if rec is None else _apply(doc, rec)
                want = _function_ast(source, fn.def_line)
                got = _function_ast(new, fn.def_line)
                if got is not None and got == want:
                    equal += 1
                    if new == source:
                        exact += 1
                else:
                    failures.append(f"{mod}:{fn.def_line + 1} {fn.qualname}")
    return {
        "modules": list(modules),
        "functions": total,
        "skipped_long": skipped,
        "equal_ast": equal,
        "equal_text": exact,
        "share_equal": round(equal / max(total, 1), 4),
        "failures": failures[:20],
    }


def _apply(doc: Document, rec: Any) -> str:
    from phi_lsp.api import apply

    return apply(doc, [rec])


def _big_file(lines: int = 5000) -> str:
    """A realistic 5,000-line module: standard-library code, repeated, ending in a
    function that is being written."""
    parts = []
    n = 0
    for mod in ("argparse", "difflib", "textwrap", "calendar"):
        text = _module_source(mod)
        parts.append(text)
        n += text.count("\n")
        if n >= lines:
            break
    body = "".join(parts)
    kept = "\n".join(body.split("\n")[: lines - 8])
    return (
        kept
        + '\n\n\ndef moving_average(values, n):\n    """Average of each window of n values."""\n    total = 0\n    \n'
    )


def run(args: argparse.Namespace) -> dict[str, Any]:
    from model_runtime import GenerationRequest, load_engine

    spec = getattr(args, "model", None) or "tiny"
    new_tokens = int(getattr(args, "new_tokens", 16) or 16)
    runs = max(1, int(getattr(args, "runs", 3) or 3))
    print(f"pipeline: loading {spec}", file=sys.stderr)
    engine = load_engine(spec, device=getattr(args, "device", "auto") or "auto")
    text = _big_file()
    doc = Document(text)
    line = doc.line_count - 2  # the "    " line at the end
    cursor_char = len(doc.line_text(line))
    budget = engine.info.context_length - new_tokens

    # Model time: one generation of `new_tokens` tokens from this prompt (warm).
    ctx = context_mod.extract(doc, doc.offset_at(line, cursor_char))
    assert ctx is not None
    p = prompt_mod.build(ctx, budget, engine.count_tokens)
    req = GenerationRequest(prompt=p.text, forced_prefix=p.forced_prefix, max_new_tokens=new_tokens)
    engine.generate(req)  # warm-up, fills the KV cache
    model_ms = []
    gen_text = ""
    for _ in range(runs):
        # A keystroke changes the end of the prompt: time the generation after it.
        t = time.perf_counter()
        g = engine.generate(req)
        model_ms.append((time.perf_counter() - t) * 1000)
        gen_text = g.text

    # Pipeline per keystroke: type one character, reparse, context, prompt, stop rules.
    inc_ms: list[float] = []
    full_ms: list[float] = []
    stages: dict[str, list[float]] = {"reparse": [], "context": [], "prompt": [], "postprocess": []}
    keys = "total += v"
    for i in range(max(20, runs * 10)):
        ch = keys[i % len(keys)]
        col = len(doc.line_text(line))
        t0 = time.perf_counter()
        doc.apply_change(((line, col), (line, col)), ch)
        _ = doc.tree  # edits are applied lazily: time the incremental reparse here
        t1 = time.perf_counter()
        ctx = context_mod.extract(doc, doc.offset_at(line, col + 1))
        t2 = time.perf_counter()
        p = prompt_mod.build(ctx, budget, engine.count_tokens)  # type: ignore[arg-type]
        t3 = time.perf_counter()
        stop = Stopper(ctx, p.forced_prefix)  # type: ignore[arg-type]
        # The engine calls the stop rule after every token; then the final cut.
        for k in range(1, len(gen_text) + 1, max(1, len(gen_text) // new_tokens)):
            stop(p.forced_prefix + gen_text[:k])
        stop.finish(p.forced_prefix + gen_text)
        t4 = time.perf_counter()
        for name, a, b in (
            ("reparse", t0, t1),
            ("context", t1, t2),
            ("prompt", t2, t3),
            ("postprocess", t3, t4),
        ):
            stages[name].append((b - a) * 1000)
        inc_ms.append((t4 - t0) * 1000)
    for _ in range(3):
        t = time.perf_counter()
        Document(doc.text)
        full_ms.append((time.perf_counter() - t) * 1000)
    engine.close()
    med_model = p50(model_ms, 6)
    med_pipe = p50(inc_ms, 6)
    out: dict[str, Any] = {
        "model": spec,
        "file_lines": doc.line_count,
        "prompt_tokens": p.tokens,
        "new_tokens": new_tokens,
        "model_ms": round(med_model, 2),
        "pipeline_ms": round(med_pipe, 3),
        "pipeline_share_of_model": round(med_pipe / med_model, 4),
        "stages_ms": {k: p50(v, 3) for k, v in stages.items()},
        "full_parse_ms": p50(full_ms, 2),
        "incremental_vs_full_parse": round(p50(stages["reparse"], 6) / p50(full_ms, 6), 4),
        "goal": "pipeline_share_of_model < 0.05",
    }
    if not getattr(args, "no_replay", False):
        print("pipeline: replaying standard-library functions", file=sys.stderr)
        out["replay_stdlib"] = replay_agreement()
    return out
