"""Example extraction on crafted docstrings: linear time, whole crafted files well under
a second (issue 13 item 4). The shapes are what once made the extractor quadratic or
worse (a 300 KB file took 71 s, another 223 s).

Prints one JSON object: per shape, the time to extract every function of a crafted file
of ``--kb`` KB (functions with docstrings just under the cap, read as ``phi-lsp verify``
reads them: parse the file, extract each docstring) and the ratio to a file half that
size (about 2 for linear work, 4 for quadratic).

    .venv/bin/python benchmarks/extraction_bounds.py [--kb 300]
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import sys
import time
from collections.abc import Callable

from phi_lsp.verify.examples import MAX_DOCSTRING_CHARS, extract


def _repeat(line: str) -> Callable[[int], str]:
    return lambda size: "Crafted.\n\n" + line * max(1, size // len(line))


def _one_example(head: str, unit: str, tail: str) -> Callable[[int], str]:
    return lambda size: "Crafted.\n\n" + head + unit * max(1, size // len(unit)) + tail


SHAPES: dict[str, Callable[[int], str]] = {
    "unclosed calls on long lines": _repeat("    " + "f(" * 1500 + "\n"),
    "a call then a chain of ==": _repeat("    f(1) " + "== 1 " * 700 + "\n"),
    "calls and == alternating": _repeat("    " + "f(1) == " * 450 + "\n"),
    "deeply nested brackets": _repeat("    f(" + "[" * 1500 + "]" * 1500 + ") == 1\n"),
    "many quotes": _repeat("    f(" + "'\"" * 1500 + ") == 1\n"),
    "unterminated strings": _repeat("    f('" + "a\\" * 1500 + ") == 1\n"),
    "spaces before a comment": _repeat("    f(1)" + " " * 3500 + "# returns\n"),
    "Example followed by spaces": _repeat("    Example" + " " * 3500 + "x\n"),
    "many >>> examples": _repeat("    >>> f(1)\n    1\n"),
    "one >>> with many ... lines": _one_example("    >>> f([1,\n", "    ... 2,\n", "    ... 3])\n"),
    "informal-looking want lines": _one_example("    >>> f(1)\n", "    f(2) == 3 + x\n", ""),
    "an Input: never closed": _one_example("    Input: [\n", "    1,\n", ""),
    "maths definitions": _repeat("    f(n) = n + 1\n"),
    "bindings with two markers": _repeat(
        "    For x = [" + "1," * 1000 + "] the output should be the output should be 1\n"
    ),
    "binding lines and steps": _repeat("    x = [1, 2]\n    -> sort x\n"),
    "another name's calls": _repeat("    g(" + "[1]," * 900 + ") => 1\n"),
    "examples past the cap": _repeat("    f(1) == 1\n"),
}


def crafted_file(shape: str, size: int) -> str:
    """A module of about ``size`` characters: functions whose docstrings are the shape."""
    per_doc = min(size, MAX_DOCSTRING_CHARS - 1_000)
    parts: list[str] = []
    total = 0
    while total < size:
        doc = SHAPES[shape](min(per_doc, size - total))
        doc = doc.replace("\\", "\\\\").replace('"', '\\"')
        parts.append(f'def f{len(parts)}(x):\n    """{doc}"""\n    return x\n\n')
        total += len(parts[-1])
    return "".join(parts)


def extract_file(source: str) -> tuple[int, int]:
    """(checks, skipped) over every function of ``source``, as verification reads it."""
    checks = skipped = 0
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef) and ast.get_docstring(node, clean=False):
            doc = node.body[0].value.value  # type: ignore[attr-defined]
            params = [a.arg for a in node.args.args]
            result = extract(doc, "f", params, len(params))
            checks += len(result.checks)
            skipped += len(result.skipped)
    return checks, skipped


def _timed(fn: Callable[[str], object], source: str) -> float:
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        fn(source)
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--kb", type=int, default=300, help="size of each crafted file")
    args = ap.parse_args(argv)
    size = args.kb * 1000
    rows = {}
    for shape in SHAPES:
        full, half = crafted_file(shape, size), crafted_file(shape, size // 2)
        t_full, t_half = _timed(extract_file, full), _timed(extract_file, half)
        t_parse = _timed(ast.parse, full)
        rows[shape] = {
            "file_kb": round(len(full) / 1000),
            "extract_ms": round(t_full * 1000, 1),
            # the same machine's ast.parse of the file: a yardstick that load slows alike
            "ast_parse_ms": round(t_parse * 1000, 1),
            "ratio_to_half_size": round(t_full / t_half, 2) if t_half > 0 else None,
        }
    worst = max(rows, key=lambda k: rows[k]["extract_ms"])
    print(
        json.dumps(
            {
                "shapes": rows,
                "worst": worst,
                "worst_ms": rows[worst]["extract_ms"],
                "load_average_1min": os.getloadavg()[0],
            },
            indent=1,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
