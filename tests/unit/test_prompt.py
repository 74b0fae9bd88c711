"""Prompt: Phi-1 order, ends at the last non-whitespace, fits the window, stable prefix."""

from __future__ import annotations

import os

from phi_lsp.context import extract
from phi_lsp.documents import Document
from phi_lsp.prompt import build, estimate_tokens, split_forced

SOURCE = '''\
import math
from collections import Counter


def helper(xs):
    """Squares of xs."""
    return [x * x for x in xs]


def unrelated(a):
    """Not used below."""
    return a


class Stats:
    """Statistics over a list."""

    scale: float = 1.0

    def mean(self, xs):
        """Arithmetic mean."""
        return sum(xs) / len(xs)

    def norm(self, xs):
        """Euclidean norm of xs, using helper.

        >>> Stats().norm([3, 4])
        5.0
        """
        CURSOR
'''


def _ctx(src: str = SOURCE):  # type: ignore[no-untyped-def]
    i = src.index("CURSOR")
    text = src.replace("CURSOR", "")
    return extract(Document(text), i)


def test_prompt_order_is_imports_definitions_class_then_function() -> None:
    p = build(_ctx(), budget=2000)
    t = p.text
    assert (
        t.index("import math")
        < t.index("def helper")
        < t.index("class Stats")
        < t.index("def norm")
    )
    assert "def unrelated" not in t  # not referenced by norm
    assert "def mean(self, xs): ..." in t  # sibling method signature, body elided
    assert "scale: float = 1.0" in t


def test_prompt_ends_at_closing_quotes_and_whitespace_is_forced() -> None:
    p = build(_ctx(), budget=2000)
    assert p.text.endswith('        """')
    assert p.forced_prefix == "\n        "
    assert split_forced("x = 1\n    ") == ("x = 1", "\n    ")


def test_prompt_fits_the_budget_dropping_least_relevant_first() -> None:
    ctx = _ctx()
    full = build(ctx, budget=2000)
    assert full.tokens <= 2000 and not full.dropped
    # Shrink until things fall out: definitions and members go before the function.
    fn_tokens = estimate_tokens(ctx.prefix.rstrip())
    small = build(ctx, budget=fn_tokens + 30)
    assert small.tokens <= fn_tokens + 30
    assert small.text.endswith('        """')
    assert "def norm(self, xs):" in small.text
    assert small.dropped
    assert "def helper" not in small.text


def test_huge_function_keeps_its_last_lines() -> None:
    body = "".join(f"        x{i} = {i}\n" for i in range(3000))
    src = SOURCE.replace("        CURSOR\n", body + "        CURSOR\n")
    ctx = _ctx(src)
    p = build(ctx, budget=1000)
    assert p.tokens <= 1000
    assert p.text.rstrip().endswith("x2999 = 2999")
    assert "function-head" in p.dropped


def test_prompt_prefix_is_stable_from_keystroke_to_keystroke() -> None:
    """Typing in the body changes only the end of the prompt (KV-cache reuse)."""
    prompts = []
    typed = "return math.sqrt(sum(helper(xs)))"
    for k in range(0, len(typed) + 1, 3):
        prompts.append(build(_ctx(SOURCE.replace("CURSOR", typed[:k] + "CURSOR")), 2000).text)
    base = prompts[0]
    for p in prompts[1:]:
        assert os.path.commonprefix([base, p]) == base


def test_token_counter_is_used_and_cached() -> None:
    calls: list[str] = []

    def count(text: str) -> int:
        calls.append(text)
        return len(text.split())

    ctx = _ctx()
    build(ctx, 2000, count)
    n = len(calls)
    build(ctx, 2000, count)
    assert len(calls) == n  # unchanged sections are not tokenized again
