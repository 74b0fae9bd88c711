"""The informal example forms (see :mod:`phi_lsp.verify.examples`): ``f(x) == y`` and its
other markers, ``Input:``/``Output:`` pairs, parameters bound by name, and examples
written under another name. Each rule appends to the :class:`Ctx`'s checks or skipped
and spends its line budget before parsing anything."""

from __future__ import annotations

import builtins
import re
from collections.abc import Collection

from phi_lsp.verify._checks import MAX_EXAMPLE_CHARS, MAX_LINES_JOINED, Check, Ctx, Skipped
from phi_lsp.verify._scan import (
    calls,
    clean,
    close_of,
    literal_end,
    open_brackets,
    parse_call,
    parse_expected,
    strip_comment,
)

# Longest first: "==>" must win over "==" and "=", "=>" over "=".
_ARROWS = ("==>", "==", "=>", "->", "➞", "→", "⇒", "=")
_WORDS = ("should return", "returns", "return")
_INPUT = re.compile(r"^input\s*:\s*(.*)$", re.I)
_OUTPUT = re.compile(r"^output\s*:\s*(.*)$", re.I)
_NAME_CALL = re.compile(r"([A-Za-z_]\w*)[ \t]*\(")
_BINDING = re.compile(r"[ \t]*([A-Za-z_]\w*)[ \t]*=(?![=>])[ \t]*")
_JOINER = re.compile(r"[ \t]*(?:,|\band\b)[ \t]*")
# "the output should be", "the result is", "should return", "returns", "=>", ...
_RESULT_MARKER = re.compile(
    r"\b(?:the[ \t]+)?(?:output|result|answer|return[ \t]+value)[ \t]+"
    r"(?:should[ \t]+be|will[ \t]+be|would[ \t]+be|is)\b[ \t]*:?|\bshould[ \t]+return\b",
    re.I,
)
_RETURN_LINE = re.compile(r"^(?:return|returns|output|result)\b[ \t]*[:=]?[ \t]*(.*)$", re.I)
_BUILTIN_NAMES = frozenset(dir(builtins))

# --- informal examples ------------------------------------------------------------------------


def informal(lines: list[str], ctx: Ctx, taken: set[int]) -> None:
    checks, skipped = ctx.checks, ctx.skipped
    # "f(n) = 1 + n / 2" defines f in maths notation: "=" is no example marker then.
    ctx.equals_is_definition = any(
        "(" in t and _is_definition(clean(t), ctx, i) for i, t in enumerate(lines)
    )
    ctx.tick()
    i = 0
    while i < len(lines):
        ctx.tick()
        raw = lines[i]
        if i in taken or ("(" not in raw and "=" not in raw and ":" not in raw):
            i += 1  # (a cheap test first: most lines of prose are no example of any form)
            continue
        text = clean(raw)
        if len(text) > MAX_EXAMPLE_CHARS:
            if calls(text, ctx.name):
                skipped.append(Skipped(i, text[:200], _too_long(len(text))))
            i += 1
            continue
        m_in = _INPUT.match(text)
        if m_in:
            i = _input_output(lines, i, m_in.group(1), ctx, taken, checks, skipped)
            continue
        bound = _bindings_line(lines, i, text, ctx, taken, checks, skipped)
        if bound is not None:
            i = bound
            continue
        if not calls(text, ctx.name):
            i += 1
            continue
        ctx.spend(i)
        start, logical, i = i, text, i + 1
        # A call whose brackets close on a later line (a list written over lines).
        while (
            open_brackets(logical) > 0
            and i < len(lines)
            and i - start < MAX_LINES_JOINED
            and i not in taken
            and len(logical) <= MAX_EXAMPLE_CHARS
        ):
            logical += " " + clean(lines[i])
            i += 1
        if len(logical) > MAX_EXAMPLE_CHARS:
            skipped.append(Skipped(start, logical[:200], _too_long(len(logical))))
            continue
        check, reason = parse_example(logical, ctx)
        if check is not None:
            checks.append(Check("call", check[0], check[1], start, style=check[2]))
        elif reason:
            skipped.append(Skipped(start, logical, reason))


def _too_long(n: int) -> str:
    return f"{n} characters long: examples are read up to {MAX_EXAMPLE_CHARS}"


def _leading_call(text: str, name: str) -> int:
    """End index (after ``)``) of ``name(...)`` at the start of ``text``, else -1."""
    m = _NAME_CALL.match(text)
    if not m or m.group(1) != name:
        return -1
    close = close_of(text, m.end() - 1)
    return close + 1 if close >= 0 else -1


_DEFINES = re.compile(r"\)[ \t]*=(?![=>])")


def _is_definition(text: str, ctx: Ctx, line: int) -> bool:
    if not _DEFINES.search(text):  # cheap: most lines have no ") =" at all
        return False
    end = _leading_call(text, ctx.name)
    if end < 0:
        return False
    rest = text[end:].lstrip()
    if not rest.startswith("=") or rest.startswith(("==", "=>")):
        return False
    ctx.spend(line)
    return parse_call(text[:end], ctx.name, None) is None


def parse_example(text: str, ctx: Ctx) -> tuple[tuple[str, str, str] | None, str]:
    """(call source, expected source, style), or None and why it was skipped."""
    name = ctx.name
    for word in ("assert ", "for "):  # "assert f(1) == 2", "for f(1) == 2" (after "For example")
        if text[: len(word)].lower() == word:
            rest = text[len(word) :].lstrip()
            m = _NAME_CALL.match(rest)
            if m and m.group(1) == name:
                text = rest
    end = _leading_call(text, name)
    if end < 0:
        return None, _why_not(text, ctx)
    left = text[:end]
    call = parse_call(left, name, ctx.params, ctx.required)
    if call is None:
        if parse_call(left, name, None) is None:
            return None, "the call's arguments are not Python literals"
        return None, "the arguments do not fit the function's parameters"
    rest = text[end:].lstrip()
    if rest.startswith("#"):  # "f(x)  # returns y" / "f(x) # => y": the comment holds it
        rest = rest[1:].lstrip()
    sep = _marker_at(rest)
    if sep is None:
        if not rest:
            return None, "a call with no result written after it"
        return (
            None,
            "no result marker (==, ->, =>, returns, ...) after a call with literal arguments",
        )
    if sep == "=" and ctx.equals_is_definition:
        return None, "the docstring writes f(...) = ... as a definition, not an example"
    expected, why = parse_expected(rest[len(sep) :])
    if expected is None:
        return None, why
    return (call, expected, sep), ""


def _marker_at(rest: str) -> str | None:
    for sep in _ARROWS:
        if rest.startswith(sep):
            return sep
    for word in _WORDS:
        if rest.startswith(word) and rest[len(word) : len(word) + 1] in (" ", "\t", ":"):
            return word
    return None


def _why_not(text: str, ctx: Ctx) -> str:
    """Why a line that mentions ``name(`` is no example (bounded: first few calls only)."""
    for seen, m in enumerate(re.finditer(rf"(?<![\w.]){re.escape(ctx.name)}[ \t]*\(", text)):
        if seen >= 4:
            break
        close = close_of(text, m.end() - 1)
        if close >= 0 and parse_call(text[m.start() : close + 1], ctx.name, None):
            return "no result marker (==, ->, =>, returns, ...) after a call with literal arguments"
    return "the call's arguments are not Python literals"


# --- parameters bound by name -----------------------------------------------------------------


def _bindings(text: str, pos: int, ctx: Ctx) -> tuple[list[tuple[str, str]], int]:
    """``a = 1, b = "x" and c = [1]`` from ``pos``: the (name, literal) pairs read and
    where they stop. Only names that look bound are read; checking them is the caller's."""
    pairs: list[tuple[str, str]] = []
    while True:
        m = _BINDING.match(text, pos)
        if not m:
            break
        end = literal_end(text, m.end())
        if end < 0:
            break  # whether it is a literal is checked once, with the call it makes
        pairs.append((m.group(1), text[m.end() : end]))
        pos = end
        j = _JOINER.match(text, pos)
        if j:
            pos = j.end()
    return pairs, pos


def _bound_call(pairs: list[tuple[str, str]], ctx: Ctx) -> tuple[str | None, str]:
    """The call for parameters bound by name, or None and why."""
    if ctx.params is None:
        return None, "parameters named, but the function's signature is unknown"
    names = [n for n, _ in pairs]
    if len(set(names)) != len(names) or any(n not in ctx.params for n in names):
        return None, "the names bound are not all parameters of this function"
    # The first `required` parameters are the ones without defaults (a keyword-only one
    # without a default can make this stricter than Python: skipped then, never wrong).
    if ctx.required is not None and not set(ctx.params[: ctx.required]) <= set(names):
        return None, "not every required parameter is given a value"
    values = dict(pairs)
    ordered = [p for p in ctx.params if p in values]
    if list(ctx.params[: len(ordered)]) == ordered:  # a prefix: positional, like a call
        args = ", ".join(values[p] for p in ordered)
    else:
        args = ", ".join(f"{p}={values[p]}" for p in ordered)
    call = parse_call(f"{ctx.name}({args})", ctx.name, ctx.params, ctx.required)
    if call is None:
        return None, "the values bound do not make a call of this function"
    return call, ""


def _bindings_line(
    lines: list[str],
    i: int,
    text: str,
    ctx: Ctx,
    taken: set[int],
    checks: list[Check],
    skipped: list[Skipped],
) -> int | None:
    """``For lst = [1, 2] the output should be 3`` on one line, or ``arr = [2, 1]``
    alone on a line, then (after worked steps starting with ``->``) ``return [1, 2]``.
    Returns the next line to read, or None when line ``i`` is neither."""
    lead = re.match(r"for[ \t]+", text, re.I)
    if lead:
        pairs, pos = _bindings(text, lead.end(), ctx)
        if not pairs:
            return None
        ctx.spend(i)
        rest = text[pos:]
        markers = list(_RESULT_MARKER.finditer(rest))
        if len(markers) != 1:
            why = "no result marker" if not markers else "more than one result marker"
            skipped.append(Skipped(i, text, f"parameters bound by name, but {why}"))
            return i + 1
        call, why = _bound_call(pairs, ctx)
        expected, why_e = parse_expected(rest[markers[0].end() :]) if call else (None, "")
        if call is None or expected is None:
            skipped.append(Skipped(i, text, why or why_e))
        else:
            checks.append(Check("call", call, expected, i, style="for ... the output should be"))
        return i + 1
    if ctx.params is None or not _BINDING.match(text):
        return None
    ctx.spend(i)
    pairs, pos = _bindings(text, 0, ctx)
    if not pairs or pos < len(text) or any(n not in ctx.params for n, _ in pairs):
        return None
    # A line binding parameters and nothing else: look for its result below.
    k = i + 1
    while k < len(lines) and k - i <= MAX_LINES_JOINED and k not in taken:
        nxt = clean(lines[k])
        if nxt.startswith(("->", "=>", "→")):
            k += 1
            continue
        m = _RETURN_LINE.match(nxt) if len(nxt) <= MAX_EXAMPLE_CHARS else None
        if not m:
            return None
        call, why = _bound_call(pairs, ctx)
        expected, why_e = parse_expected(m.group(1)) if call else (None, "")
        if call is None or expected is None:
            skipped.append(Skipped(i, f"{text} ... {nxt}", why or why_e))
        else:
            checks.append(Check("call", call, expected, i, style="binding/return"))
        return k + 1
    return None


def _input_output(
    lines: list[str],
    i: int,
    first: str,
    ctx: Ctx,
    taken: set[int],
    checks: list[Check],
    skipped: list[Skipped],
) -> int:
    """Parse ``Input: ...`` (possibly over lines) followed by ``Output: ...``; return next i."""
    ctx.spend(i)
    start = i
    args = first.strip()
    i += 1
    while (
        i < len(lines)
        and i not in taken
        and i - start <= MAX_LINES_JOINED
        and len(args) <= MAX_EXAMPLE_CHARS
        and not _OUTPUT.match(clean(lines[i]))
    ):
        nxt = clean(lines[i])
        if not nxt or _INPUT.match(nxt) or (args and open_brackets(args) <= 0):
            break
        args += " " + nxt
        i += 1
    m_out = _OUTPUT.match(clean(lines[i])) if i < len(lines) else None
    if not m_out:
        skipped.append(Skipped(start, f"Input: {args[:200]}", "an Input: with no Output: after it"))
        return i
    out_line = i
    expected_text = m_out.group(1)
    i += 1
    while (
        open_brackets(expected_text) > 0
        and i < len(lines)
        and i - out_line < MAX_LINES_JOINED
        and len(expected_text) <= MAX_EXAMPLE_CHARS
    ):
        expected_text += " " + clean(lines[i])
        i += 1
    shown = f"Input: {args} Output: {expected_text.strip()}"
    if len(shown) > MAX_EXAMPLE_CHARS:
        skipped.append(Skipped(start, shown[:200], _too_long(len(shown))))
        return i
    if not args:
        skipped.append(Skipped(start, shown, "the input is not written on the Input: line"))
        return i
    name = ctx.name
    call = parse_call(f"{name}({strip_comment(args).strip()})", name, ctx.params, ctx.required)
    if call is None:
        skipped.append(
            Skipped(start, shown, "the input is not a list of literal arguments for this function")
        )
        return i
    expected, why = parse_expected(expected_text)
    if expected is None:
        skipped.append(Skipped(start, shown, why))
        return i
    checks.append(Check("call", call, expected, start, style="input/output"))
    return i


# --- another name -----------------------------------------------------------------------------


def aliased(
    lines: list[str], ctx: Ctx, taken: set[int], module_names: Collection[str]
) -> list[Check]:
    """Examples that all call one other name, in a docstring that never calls the
    function's own: the function was renamed after its docstring was written
    (``grade_equation([4.0]) ==> ['A+']`` in ``numerical_letter_grade``). Taken only
    when exactly one such name has examples, it is no builtin and nothing the module
    defines, and every line calling it is an example that binds to the signature."""
    found: dict[str, list[tuple[int, str]]] = {}
    for i, raw in enumerate(lines):
        if i in taken or "(" not in raw:
            continue
        ctx.tick()
        text = clean(raw)
        if len(text) > MAX_EXAMPLE_CHARS:
            continue
        if text[:7].lower() == "assert ":
            text = text[7:].lstrip()
        m = _NAME_CALL.match(text)
        if m and _calls_after_marker(text):
            found.setdefault(m.group(1), []).append((i, text))
    if len(found) != 1:
        return []
    ((other, examples),) = found.items()
    if other == ctx.name or other in _BUILTIN_NAMES or other in module_names:
        return []
    mentions = sum(1 for i, t in enumerate(lines) if i not in taken and calls(t, other))
    if mentions != len(examples):
        return []  # the name is also used in prose: maybe another function after all
    alias = Ctx(other, ctx.params, ctx.required, ctx.deadline, ctx.equals_is_definition)
    checks: list[Check] = []
    for i, text in examples:
        ctx.spend(i)
        check, _ = parse_example(text, alias)
        if check is None:
            return []  # all or nothing: one unreadable line makes the reading doubtful
        call = ctx.name + check[0][len(other) :]
        checks.append(Check("call", call, check[1], i, style=f"{check[2]} (written as {other})"))
    return checks


def _calls_after_marker(text: str) -> bool:
    """``name(...)`` at the start of ``text`` followed by a result marker other than "="."""
    m = _NAME_CALL.match(text)
    end = close_of(text, m.end() - 1) if m else -1
    return end >= 0 and _marker_at(text[end + 1 :].lstrip()) not in (None, "=")
