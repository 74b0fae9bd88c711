"""The prompt for a left-to-right model, in Phi-1's training style.

Order: imports, the module's definitions the function refers to, the enclosing
class (header, docstring, other members), then the function up to the cursor.
What changes least comes first so that consecutive keystrokes share a long token
prefix (the engine reuses its KV cache for it). When the window is short, the least
relevant parts go first: unreferenced definitions, class members, imports, and
last the oldest lines of the function itself.

The prompt ends at the last non-whitespace character before the cursor; the
whitespace after it (newline + indentation) becomes the request's forced prefix
(see docs/architecture.md "Where the prompt ends").
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from phi_lsp.context import Context, Definition

TokenCounter = Callable[[str], int]

SAFETY_TOKENS = 8  # section boundaries can merge differently than counted apart
FULL_DEFINITION_LINES = 25  # a referenced helper shorter than this is shown whole


def estimate_tokens(text: str) -> int:
    """Pessimistic count for when no tokenizer is at hand (code BPEs average 3-4 chars)."""
    return len(text) * 2 // 5 + 1


@dataclass(frozen=True)
class Prompt:
    text: str  # what the model reads
    forced_prefix: str  # whitespace between the prompt's end and the cursor
    tokens: int  # counted (or estimated) size of ``text``
    dropped: tuple[str, ...] = ()  # what did not fit, for logs and tests


class _CountCache:
    """Counts per section text: unchanged sections are not re-tokenized per keystroke."""

    def __init__(self, count: TokenCounter, size: int = 256) -> None:
        self.count, self.size = count, size
        self.memo: OrderedDict[str, int] = OrderedDict()

    def __call__(self, text: str) -> int:
        if not text:
            return 0
        with _lock:
            n = self.memo.get(text)
            if n is not None:
                self.memo.move_to_end(text)
                return n
        n = self.count(text)  # outside the lock: tokenizing may take a while
        with _lock:
            self.memo[text] = n
            if len(self.memo) > self.size:
                self.memo.popitem(last=False)
        return n


_lock = threading.Lock()  # the server builds prompts on several threads
_counters: OrderedDict[tuple[int, int], _CountCache] = OrderedDict()


def _counter(count: TokenCounter) -> _CountCache:
    # Bound methods are new objects on each attribute access: key by owner + function.
    key = (id(getattr(count, "__self__", None)), id(getattr(count, "__func__", count)))
    with _lock:
        c = _counters.get(key)
        if c is None or c.count != count:
            c = _counters[key] = _CountCache(count)
            while len(_counters) > 8:
                _counters.popitem(last=False)
        return c


def split_forced(text_before_cursor: str) -> tuple[str, str]:
    """(prompt, forced prefix): trailing whitespace moves into the forced prefix."""
    head = text_before_cursor.rstrip()
    return head, text_before_cursor[len(head) :]


def _definition_text(d: Definition) -> str:
    return d.text if d.text.count("\n") < FULL_DEFINITION_LINES else d.summary


def build(ctx: Context, budget: int, count: TokenCounter = estimate_tokens) -> Prompt:
    """A prompt of at most ``budget`` tokens (the window minus the new-token budget)."""
    n = _counter(count)
    budget -= SAFETY_TOKENS
    body, forced = split_forced(ctx.prefix)
    # Definitions the function refers to (not itself, not its own class), file order.
    own = {ctx.name, ctx.class_name}
    defs = [d for d in ctx.definitions if d.name in ctx.referenced and d.name not in own]
    imports = "\n".join(ctx.imports)
    cls_head = ctx.class_header
    cls_doc = ctx.class_docstring
    members = ctx.class_members

    dropped: list[str] = []
    fixed = n(body) + n(cls_head) + 2
    if fixed > budget:
        # Even the function alone is too long: keep its last lines.
        body = _tail_lines(body, budget - n(cls_head) - 2, n)
        dropped.append("function-head")
        fixed = n(body) + n(cls_head) + 2
    room = budget - fixed
    # Spend the rest by relevance: imports, class docstring, members, definitions
    # (nearest to the function first among definitions).
    chosen_defs: list[Definition] = []
    keep_imports = keep_cls_doc = False
    kept_members: list[str] = []
    if imports and n(imports) + 2 <= room:
        keep_imports, room = True, room - n(imports) - 2
    elif imports:
        dropped.append("imports")
    if cls_doc and n(cls_doc) + 1 <= room:
        keep_cls_doc, room = True, room - n(cls_doc) - 1
    for m in members:
        if n(m) + 1 <= room:
            kept_members.append(m)
            room -= n(m) + 1
        else:
            dropped.append("member")
    for d in sorted(defs, key=lambda d: abs(d.start_line - ctx.def_line)):
        t = _definition_text(d)
        if n(t) + 2 <= room:
            chosen_defs.append(d)
            room -= n(t) + 2
        elif n(d.summary) + 2 <= room:
            chosen_defs.append(Definition(d.name, d.kind, d.summary, d.summary, d.start_line))
            room -= n(d.summary) + 2
        else:
            dropped.append(f"def:{d.name}")
    chosen_defs.sort(key=lambda d: d.start_line)

    parts: list[str] = []
    if keep_imports:
        parts.append(imports + "\n")
    for d in chosen_defs:
        parts.append(_definition_text(d) + "\n")
    if cls_head:
        cls_lines = [cls_head]
        if keep_cls_doc:
            cls_lines.append(cls_doc)
        cls_lines += kept_members
        parts.append("\n".join(cls_lines) + "\n")
    # PEP 8 spacing, as in the training data: two blank lines between top-level
    # blocks, one before a method.
    head = "\n\n".join(parts)
    text = (head + ("\n" if cls_head else "\n\n") + body) if head else body
    return Prompt(
        # The model saw "\n" line endings in training; CRLF goes back on insertion.
        text=text.replace("\r\n", "\n"),
        forced_prefix=forced.replace("\r\n", "\n"),
        tokens=sum(n(p) for p in parts) + n(body) + 2 * len(parts),
        dropped=tuple(dropped),
    )


def _tail_lines(text: str, budget: int, n: TokenCounter) -> str:
    lines = text.split("\n")
    while len(lines) > 1 and n("\n".join(lines)) > budget:
        lines.pop(0)
    return "\n".join(lines)
