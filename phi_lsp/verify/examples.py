"""Extract checkable examples from a docstring.

Two kinds of check come out:

- ``doctest``: ``>>>`` examples, parsed by :mod:`doctest` itself so that multi-line
  sources, ``# doctest: +ELLIPSIS`` style directives and expected exceptions keep
  their doctest meaning.
- ``call``: the informal styles real docstrings use, one example per logical line:
  ``f(x) == y``, ``f(x) -> y``, ``f(x) => y``, ``f(x) ==> y``, ``f(x) ➞ y``,
  ``f(x) returns y``, ``f(x) should return y``, ``f(x) = y``, ``f(x)  # returns y``,
  ``f(x) -> 7 - 2 = 5`` (worked arithmetic that gives the result written),
  ``Input: ... / Output: ...`` pairs, parameters bound by name
  (``For lst = [1, 2] the output should be 3``, ``For s = "ab", c = "a", the result
  should be ('b', False)``, and a line ``arr = [2, 1]`` followed by ``return [1, 2]``),
  and examples that all call one other name where the function's own never appears
  (a function renamed after its docstring was written).

Precision comes first: a check that fails on a correct implementation is a false
alarm that hides good suggestions. So an informal example is kept only when the call's
arguments are all Python literals that bind to the signature, and the result is a
Python literal; anything else is reported in ``skipped`` with a reason.

Bounded work: extraction is linear in the docstring's size (each line is scanned a
constant number of times; a call's extent is found by bracket matching, never by
trying every split), with caps on the docstring's length (:data:`MAX_DOCSTRING_CHARS`),
an informal example's length (:data:`MAX_EXAMPLE_CHARS`) and the examples per function
(:data:`MAX_EXAMPLES`); past a cap the rest is reported in ``skipped``. ``deadline``
(a ``time.monotonic()`` value) stops a run that takes longer: nothing is run then.
"""

from __future__ import annotations

import ast
import builtins
import doctest
import re
import time
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass, field

from phi_lsp.verify import compare  # noqa: F401  (registers pytest's doctest flag names)

MAX_DOCSTRING_CHARS = 100_000  # longer docstrings are not read for examples
MAX_EXAMPLE_CHARS = 4_000  # an informal example's logical line
MAX_EXAMPLES = 100  # checks per function; the rest are reported as skipped
MAX_CANDIDATES = 400  # lines per docstring examined as possible examples (parsed)
_MAX_LINES_JOINED = 12
_MAX_DEPTH = 100  # brackets nested in one example (Python's parser stops at 200)

# Longest first: "==>" must win over "==" and "=", "=>" over "=".
_ARROWS = ("==>", "==", "=>", "->", "➞", "→", "⇒", "=")
_WORDS = ("should return", "returns", "return")
_BULLET = re.compile(r"^(?:[-*•]\s+|\d+[.)]\s+)")
_LEAD = re.compile(
    r"^(?:e\.g\.|i\.e\.|example(?:\s*\d+)?\s*:|examples?\s*:|for example\s*[:,])\s*", re.I
)
_INPUT = re.compile(r"^input\s*:\s*(.*)$", re.I)
_OUTPUT = re.compile(r"^output\s*:\s*(.*)$", re.I)
_NAME_CALL = re.compile(r"([A-Za-z_]\w*)[ \t]*\(")
_BINDING = re.compile(r"[ \t]*([A-Za-z_]\w*)[ \t]*=(?![=>])[ \t]*")
_JOINER = re.compile(r"[ \t]*(?:,|\band\b)[ \t]*")
_WORD_TOKEN = re.compile(r"[-+]?[\w.]+")
# "the output should be", "the result is", "should return", "returns", "=>", ...
_RESULT_MARKER = re.compile(
    r"\b(?:the[ \t]+)?(?:output|result|answer|return[ \t]+value)[ \t]+"
    r"(?:should[ \t]+be|will[ \t]+be|would[ \t]+be|is)\b[ \t]*:?|\bshould[ \t]+return\b",
    re.I,
)
_RETURN_LINE = re.compile(r"^(?:return|returns|output|result)\b[ \t]*[:=]?[ \t]*(.*)$", re.I)
_BUILTIN_NAMES = frozenset(dir(builtins))


@dataclass(frozen=True)
class Check:
    """One example to run. ``line`` is the 0-based line inside the docstring."""

    kind: str  # "doctest" | "call"
    source: str  # doctest source, or the call expression
    expected: str  # doctest "want" text, or the expected literal's source
    line: int
    style: str = ""  # ">>>", "==", "->", "returns", "input/output", ...
    exc_msg: str | None = None  # doctest: the expected exception line
    options: dict[str, bool] = field(default_factory=dict)  # doctest directives by name

    def as_dict(self) -> dict:
        return asdict(self)

    def wire(self) -> dict[str, str]:
        """What the sandbox gets: the code to run, never the expected text (the verdict
        is the host's, :func:`phi_lsp.verify.compare.judge`)."""
        return {"kind": self.kind, "source": self.source}


@dataclass(frozen=True)
class Skipped:
    line: int
    text: str
    reason: str

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class ExtractResult:
    checks: list[Check]
    skipped: list[Skipped]


class _OutOfTime(Exception):
    pass


class _Exhausted(Exception):
    """More lines look like examples than :data:`MAX_CANDIDATES`."""

    def __init__(self, line: int) -> None:
        self.line = line


@dataclass
class _Ctx:
    """What every rule needs: the function, its signature, the time budget."""

    name: str
    params: Sequence[str] | None
    required: int | None
    deadline: float | None
    equals_is_definition: bool = False
    budget: int = MAX_CANDIDATES
    checks: list[Check] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    def tick(self) -> None:
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise _OutOfTime

    def spend(self, line: int) -> None:
        """One line to parse (the costly part): a docstring gets MAX_CANDIDATES."""
        self.budget -= 1
        if self.budget < 0:
            raise _Exhausted(line)


def extract(
    docstring: str,
    function_name: str,
    params: Sequence[str] | None = None,
    required: int | None = None,
    *,
    deadline: float | None = None,
    module_names: Collection[str] = (),
) -> ExtractResult:
    """All examples of ``function_name`` found in ``docstring``.

    ``docstring`` is the raw string value (not cleaned), so that line numbers match the
    file. ``params``, when known, are the function's parameter names (without ``self``);
    they let ``Input: a = 1, b = 2`` become a keyword call and reject calls that cannot
    bind; ``required`` is how many of them have no default. ``function_name`` may be
    ``Class.method``: only doctests are taken then, as an informal ``method(x)`` has no
    instance to run on. ``deadline`` is a ``time.monotonic()`` value: past it, nothing
    is returned to run and ``skipped`` says why. ``module_names`` are the names the
    module defines: examples calling one of them are never read as this function's.
    """
    if len(docstring) > MAX_DOCSTRING_CHARS:
        why = (
            f"the docstring is {len(docstring)} characters long; examples are read "
            f"from docstrings up to {MAX_DOCSTRING_CHARS}"
        )
        return ExtractResult([], [Skipped(0, "", why)])
    ctx = _Ctx(function_name.rsplit(".", 1)[-1], params, required, deadline)
    try:
        _extract(docstring, function_name, ctx, module_names)
    except _OutOfTime:
        why = "reading the examples took longer than its time budget; none are run"
        return ExtractResult([], [Skipped(0, "", why)])
    except _Exhausted as e:
        why = f"more than {MAX_CANDIDATES} lines look like examples: from here on none are read"
        ctx.skipped.append(Skipped(e.line, "", why))
    checks, skipped = ctx.checks, ctx.skipped
    checks.sort(key=lambda c: c.line)
    if len(checks) > MAX_EXAMPLES:
        rest = checks[MAX_EXAMPLES:]
        why = f"{len(rest)} more examples past the first {MAX_EXAMPLES} are not run"
        skipped.append(Skipped(rest[0].line, rest[0].source.strip()[:200], why))
        checks = checks[:MAX_EXAMPLES]
    return ExtractResult(checks, skipped)


def _extract(docstring: str, function_name: str, ctx: _Ctx, module_names: Collection[str]) -> None:
    checks, skipped = ctx.checks, ctx.skipped
    doctest_lines: set[int] = set()
    is_method = "." in function_name
    stop = _nth(docstring, ">>>", MAX_CANDIDATES + 1)
    if stop >= 0:  # doctest would build every example first: read only the first ones
        stop = docstring.rfind("\n", 0, stop) + 1
        line = docstring.count("\n", 0, stop)
        why = f"more than {MAX_CANDIDATES} >>> examples: from here on none are read"
        skipped.append(Skipped(line, "", why))
        docstring = docstring[:stop]
    try:
        parts = doctest.DocTestParser().parse(docstring, function_name)
    except ValueError as e:  # e.g. inconsistent indentation in a >>> block
        skipped.append(Skipped(_error_line(str(e)), "", f"doctest could not parse it: {e}"))
        parts = []
        for i, text in enumerate(docstring.splitlines()):
            if text.lstrip().startswith((">>>", "...")):
                doctest_lines.add(i)
    ctx.tick()
    for part in parts:
        if not isinstance(part, doctest.Example):
            continue
        ctx.tick()
        ctx.spend(part.lineno)
        want_lines = part.want.splitlines(keepends=True)
        want_line = part.lineno + part.source.count("\n")
        cut = None if is_method else _informal_in_want(want_lines, want_line, ctx)
        if cut is not None and part.exc_msg is None:
            # ">>> f(1)\n2\nf(2) == 4" with no blank line between: doctest would read
            # "f(2) == 4" as more expected output; the author meant another example.
            part.want = "".join(want_lines[:cut])
        n_lines = part.source.count("\n") + part.want.count("\n")
        doctest_lines.update(range(part.lineno, part.lineno + max(n_lines, 1)))
        options = {
            name: part.options[flag]
            for name, flag in doctest.OPTIONFLAGS_BY_NAME.items()
            if flag in part.options
        }
        if options.get("SKIP"):
            skipped.append(Skipped(part.lineno, part.source.strip(), "marked doctest: +SKIP"))
            continue
        want, style = part.want, ">>>"
        if not want and _is_comparison(part.source):
            # ">>> f(x) == y" with no output line: the author means "this is True".
            # (pytest fails such an example whatever f does; this reading is deliberate.)
            want, style = "True\n", ">>> comparison"
        checks.append(
            Check(
                kind="doctest",
                source=part.source,
                expected=want,
                line=part.lineno,
                style=style,
                exc_msg=part.exc_msg,
                options=options,
            )
        )
    lines = docstring.splitlines()
    if is_method:
        for i, text in enumerate(lines):
            if i not in doctest_lines and _calls(text, ctx.name):
                skipped.append(
                    Skipped(i, text.strip(), "informal example of a method: no instance to run")
                )
        return
    before = len(checks)
    _informal(lines, ctx, doctest_lines)
    if len(checks) == before and not any(_calls(t, ctx.name) for t in lines):
        checks.extend(_aliased(lines, ctx, doctest_lines, module_names))


def _nth(text: str, sub: str, n: int) -> int:
    """Index of the n-th (1-based) occurrence of ``sub``, or -1."""
    k = -1
    for _ in range(n):
        k = text.find(sub, k + 1)
        if k < 0:
            return -1
    return k


def _informal_in_want(want_lines: list[str], first_line: int, ctx: _Ctx) -> int | None:
    """Index of the first want line (after the first) that is an informal example."""
    for k, text in enumerate(want_lines[1:], start=1):
        cleaned = _clean(text)
        if len(cleaned) <= MAX_EXAMPLE_CHARS and _calls(cleaned, ctx.name):
            ctx.spend(first_line + k)
            check, _ = _parse_example(cleaned, ctx)
            if check is not None:
                return k
    return None


def _is_comparison(source: str) -> bool:
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return False
    return (
        len(tree.body) == 1
        and isinstance(tree.body[0], ast.Expr)
        and isinstance(tree.body[0].value, ast.Compare)
        and all(isinstance(op, ast.Eq) for op in tree.body[0].value.ops)
    )


def _error_line(message: str) -> int:
    m = re.search(r"line (\d+)", message)
    return int(m.group(1)) if m else 0


def _calls(text: str, name: str) -> bool:
    return re.search(rf"(?<![\w.]){re.escape(name)}[ \t]*\(", text) is not None


# --- scanning ---------------------------------------------------------------------------------


# A string literal: to its closing quote, or to the end when unterminated (a rough
# one-line reading, no prefixes or triple quotes); with _BRACKET_TOKEN, or a bracket. The
# branches start with different characters, so the regexes never backtrack; scanning goes
# token by token at C speed, not character by character in Python.
_STRING = re.compile(r"""'(?:[^'\\]|\\.)*'?|"(?:[^"\\]|\\.)*"?""", re.S)
_BRACKET_TOKEN = re.compile(r"""'(?:[^'\\]|\\.)*'?|"(?:[^"\\]|\\.)*"?|[()\[\]{}]""", re.S)


def _blank_strings(text: str) -> str:
    """``text`` with each string literal's characters replaced (same length, same indices)."""
    return _STRING.sub(lambda m: "'" * (m.end() - m.start()), text)


def _open_brackets(text: str) -> int:
    """Unclosed ( [ { outside string literals (a rough count, good enough to join lines)."""
    code = _STRING.sub("", text)
    opens = code.count("(") + code.count("[") + code.count("{")
    return opens - code.count(")") - code.count("]") - code.count("}")


def _close_of(text: str, open_at: int) -> int:
    """Index of the bracket closing the one at ``open_at``, or -1 (one linear scan; -1
    also past _MAX_DEPTH levels, which no example nests and Python's parser refuses)."""
    depth = 0
    for m in _BRACKET_TOKEN.finditer(text, open_at):
        ch = text[m.start()]
        if ch in "([{":
            depth += 1
            if depth > _MAX_DEPTH:
                return -1
        elif ch in ")]}":
            depth -= 1
            if depth == 0:
                return m.start()
    return -1


def _literal_end(text: str, i: int) -> int:
    """End of the literal-looking span starting at ``i`` (a string, a bracketed value or
    one word such as ``-1.5``/``True``), or -1."""
    if i >= len(text):
        return -1
    ch = text[i]
    if ch in "'\"":
        m = _STRING.match(text, i)
        closed = m is not None and m.end() - i >= 2 and text[m.end() - 1] == ch
        return m.end() if closed else -1  # type: ignore[union-attr]
    if ch in "([{":
        close = _close_of(text, i)
        return close + 1 if close >= 0 else -1
    m = _WORD_TOKEN.match(text, i)
    return m.end() if m else -1


def _is_literal(src: str) -> bool:
    try:
        ast.literal_eval(ast.parse(src, mode="eval").body)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False
    return True


# --- informal examples ------------------------------------------------------------------------


def _informal(lines: list[str], ctx: _Ctx, taken: set[int]) -> None:
    checks, skipped = ctx.checks, ctx.skipped
    # "f(n) = 1 + n / 2" defines f in maths notation: "=" is no example marker then.
    ctx.equals_is_definition = any(
        "(" in t and _is_definition(_clean(t), ctx, i) for i, t in enumerate(lines)
    )
    ctx.tick()
    i = 0
    while i < len(lines):
        ctx.tick()
        raw = lines[i]
        if i in taken or ("(" not in raw and "=" not in raw and ":" not in raw):
            i += 1  # (a cheap test first: most lines of prose are no example of any form)
            continue
        text = _clean(raw)
        if len(text) > MAX_EXAMPLE_CHARS:
            if _calls(text, ctx.name):
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
        if not _calls(text, ctx.name):
            i += 1
            continue
        ctx.spend(i)
        start, logical, i = i, text, i + 1
        # A call whose brackets close on a later line (a list written over lines).
        while (
            _open_brackets(logical) > 0
            and i < len(lines)
            and i - start < _MAX_LINES_JOINED
            and i not in taken
            and len(logical) <= MAX_EXAMPLE_CHARS
        ):
            logical += " " + _clean(lines[i])
            i += 1
        if len(logical) > MAX_EXAMPLE_CHARS:
            skipped.append(Skipped(start, logical[:200], _too_long(len(logical))))
            continue
        check, reason = _parse_example(logical, ctx)
        if check is not None:
            checks.append(Check("call", check[0], check[1], start, style=check[2]))
        elif reason:
            skipped.append(Skipped(start, logical, reason))


def _too_long(n: int) -> str:
    return f"{n} characters long: examples are read up to {MAX_EXAMPLE_CHARS}"


def _clean(text: str) -> str:
    text = text.strip()
    text = _BULLET.sub("", text)
    for _ in range(2):
        text = _LEAD.sub("", text)
    return text.strip()


def _leading_call(text: str, name: str) -> int:
    """End index (after ``)``) of ``name(...)`` at the start of ``text``, else -1."""
    m = _NAME_CALL.match(text)
    if not m or m.group(1) != name:
        return -1
    close = _close_of(text, m.end() - 1)
    return close + 1 if close >= 0 else -1


_DEFINES = re.compile(r"\)[ \t]*=(?![=>])")


def _is_definition(text: str, ctx: _Ctx, line: int) -> bool:
    if not _DEFINES.search(text):  # cheap: most lines have no ") =" at all
        return False
    end = _leading_call(text, ctx.name)
    if end < 0:
        return False
    rest = text[end:].lstrip()
    if not rest.startswith("=") or rest.startswith(("==", "=>")):
        return False
    ctx.spend(line)
    return _parse_call(text[:end], ctx.name, None) is None


def _parse_example(text: str, ctx: _Ctx) -> tuple[tuple[str, str, str] | None, str]:
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
    call = _parse_call(left, name, ctx.params, ctx.required)
    if call is None:
        if _parse_call(left, name, None) is None:
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
    expected, why = _parse_expected(rest[len(sep) :])
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


def _why_not(text: str, ctx: _Ctx) -> str:
    """Why a line that mentions ``name(`` is no example (bounded: first few calls only)."""
    for seen, m in enumerate(re.finditer(rf"(?<![\w.]){re.escape(ctx.name)}[ \t]*\(", text)):
        if seen >= 4:
            break
        close = _close_of(text, m.end() - 1)
        if close >= 0 and _parse_call(text[m.start() : close + 1], ctx.name, None):
            return "no result marker (==, ->, =>, returns, ...) after a call with literal arguments"
    return "the call's arguments are not Python literals"


def _parse_call(
    text: str, name: str, params: Sequence[str] | None, required: int | None = None
) -> str | None:
    """``text`` if it is exactly ``name(<literals>)`` and could bind to ``params``."""
    try:
        node = ast.parse(text, mode="eval").body
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return None
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
        return None
    if node.func.id != name:
        return None
    try:
        for a in node.args:
            if isinstance(a, ast.Starred):
                return None
            ast.literal_eval(a)
        for kw in node.keywords:
            if kw.arg is None:
                return None
            ast.literal_eval(kw.value)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None
    if params is not None:
        names = [kw.arg for kw in node.keywords]
        if len(node.args) > len(params) or any(n not in params for n in names):
            return None
        if set(names) & set(params[: len(node.args)]):
            return None
        if required is not None and len(node.args) + len(names) < required:
            return None
    return text


_WORD_LITERALS = {"true": "True", "false": "False", "none": "None", "null": "None"}


_IDENTIFIER = re.compile(r"(?<![\w.])[A-Za-z_]\w*(?!['\w])")  # b'' and r'' are prefixes, not names
_CONSTANTS = frozenset({"True", "False", "None"})


def _looks_literal(text: str) -> bool:
    """No name outside strings but True/False/None (``1e5``, ``0x1f``, ``2j`` are numbers)
    and no comparison: worth parsing as a literal (or as worked arithmetic ``7 - 2 = 5``)."""
    code = _blank_strings(text)
    if "==" in code or "<" in code or ">" in code or "!" in code:
        return False
    return all(m.group() in _CONSTANTS for m in _IDENTIFIER.finditer(code))


def _parse_expected(text: str) -> tuple[str | None, str]:
    text = _strip_comment(text).strip()
    if not text:
        return None, "nothing after the result marker"
    # "=> true": the whole result is one word that can only mean the Python constant.
    word = text.rstrip(".").strip()
    if word.lower() in _WORD_LITERALS and word not in _WORD_LITERALS.values():
        return _WORD_LITERALS[word.lower()], ""
    if not _looks_literal(text):  # a name that is no constant: no need to parse it
        return None, f"the expected result '{_shown(text)}' is not a Python literal"
    candidates = [text]
    # Prose punctuation after the value: "returns 'lm'." / "should return 16."
    if text[-1] in ".,;":
        candidates.insert(0, text[:-1].rstrip())
    for cand in candidates:
        try:
            node = ast.parse(cand, mode="eval").body
            ast.literal_eval(node)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            continue
        if _parenthesized_single(cand, node):
            return None, f"'{cand}' is ambiguous: a value in parentheses or a one-element tuple?"
        return cand, ""
    worked = _worked_arithmetic(candidates[0])
    if worked is not None:
        return worked
    return None, f"the expected result '{_shown(text)}' is not a Python literal"


def _shown(text: str) -> str:
    return text if len(text) <= 200 else text[:200] + "..."


def _worked_arithmetic(text: str) -> tuple[str | None, str] | None:
    """``19 - 5 - 6 = 8``: the working, then the result. The result counts only when the
    working (numbers and + - * / // % only) really gives it; None if not this shape."""
    if "=" not in text:
        return None
    cut = _blank_strings(text).rfind("=")
    if cut <= 0 or text[cut - 1] in "=!<>" or text[cut + 1 : cut + 2] in ("=", ">"):
        return None
    working, result = text[:cut].strip(), text[cut + 1 :].strip()
    if not _is_literal(result):
        return None
    try:
        node = ast.parse(working, mode="eval").body
        value = _arith(node, budget=[64])
        expected = ast.literal_eval(result)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError, ZeroDivisionError):
        return None
    if type(expected) not in (int, float) or abs(value - expected) > 1e-9 * max(1, abs(value)):
        return None, f"the working '{_shown(working)}' does not give the result {result}"
    return result, ""


_ARITH_OPS = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
    ast.FloorDiv: lambda a, b: a // b,
    ast.Mod: lambda a, b: a % b,
}


def _arith(node: ast.expr, budget: list[int]) -> float:
    """A tiny evaluator for numbers and + - * / // %: at most 64 nodes, so a docstring
    cannot make the host compute anything big."""
    budget[0] -= 1
    if budget[0] < 0:
        raise ValueError("too long")
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        if abs(node.value) > 1e12:
            raise ValueError("too big")
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        v = _arith(node.operand, budget)
        return -v if isinstance(node.op, ast.USub) else v
    if isinstance(node, ast.BinOp) and type(node.op) in _ARITH_OPS:
        return _ARITH_OPS[type(node.op)](_arith(node.left, budget), _arith(node.right, budget))
    raise ValueError("not arithmetic")


def _parenthesized_single(text: str, node: ast.expr) -> bool:
    # ("Venus") is the string, but people write it for the tuple ("Venus",).
    return text.startswith("(") and not isinstance(node, ast.Tuple)


def _strip_comment(text: str) -> str:
    if "#" not in text:
        return text
    k = _blank_strings(text).find("#")
    return text[:k] if k >= 0 else text


# --- parameters bound by name -----------------------------------------------------------------


def _bindings(text: str, pos: int, ctx: _Ctx) -> tuple[list[tuple[str, str]], int]:
    """``a = 1, b = "x" and c = [1]`` from ``pos``: the (name, literal) pairs read and
    where they stop. Only names that look bound are read; checking them is the caller's."""
    pairs: list[tuple[str, str]] = []
    while True:
        m = _BINDING.match(text, pos)
        if not m:
            break
        end = _literal_end(text, m.end())
        if end < 0:
            break  # whether it is a literal is checked once, with the call it makes
        pairs.append((m.group(1), text[m.end() : end]))
        pos = end
        j = _JOINER.match(text, pos)
        if j:
            pos = j.end()
    return pairs, pos


def _bound_call(pairs: list[tuple[str, str]], ctx: _Ctx) -> tuple[str | None, str]:
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
    call = _parse_call(f"{ctx.name}({args})", ctx.name, ctx.params, ctx.required)
    if call is None:
        return None, "the values bound do not make a call of this function"
    return call, ""


def _bindings_line(
    lines: list[str],
    i: int,
    text: str,
    ctx: _Ctx,
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
        expected, why_e = _parse_expected(rest[markers[0].end() :]) if call else (None, "")
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
    while k < len(lines) and k - i <= _MAX_LINES_JOINED and k not in taken:
        nxt = _clean(lines[k])
        if nxt.startswith(("->", "=>", "→")):
            k += 1
            continue
        m = _RETURN_LINE.match(nxt) if len(nxt) <= MAX_EXAMPLE_CHARS else None
        if not m:
            return None
        call, why = _bound_call(pairs, ctx)
        expected, why_e = _parse_expected(m.group(1)) if call else (None, "")
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
    ctx: _Ctx,
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
        and i - start <= _MAX_LINES_JOINED
        and len(args) <= MAX_EXAMPLE_CHARS
        and not _OUTPUT.match(_clean(lines[i]))
    ):
        nxt = _clean(lines[i])
        if not nxt or _INPUT.match(nxt) or (args and _open_brackets(args) <= 0):
            break
        args += " " + nxt
        i += 1
    m_out = _OUTPUT.match(_clean(lines[i])) if i < len(lines) else None
    if not m_out:
        skipped.append(Skipped(start, f"Input: {args[:200]}", "an Input: with no Output: after it"))
        return i
    out_line = i
    expected_text = m_out.group(1)
    i += 1
    while (
        _open_brackets(expected_text) > 0
        and i < len(lines)
        and i - out_line < _MAX_LINES_JOINED
        and len(expected_text) <= MAX_EXAMPLE_CHARS
    ):
        expected_text += " " + _clean(lines[i])
        i += 1
    shown = f"Input: {args} Output: {expected_text.strip()}"
    if len(shown) > MAX_EXAMPLE_CHARS:
        skipped.append(Skipped(start, shown[:200], _too_long(len(shown))))
        return i
    if not args:
        skipped.append(Skipped(start, shown, "the input is not written on the Input: line"))
        return i
    name = ctx.name
    call = _parse_call(f"{name}({_strip_comment(args).strip()})", name, ctx.params, ctx.required)
    if call is None:
        skipped.append(
            Skipped(start, shown, "the input is not a list of literal arguments for this function")
        )
        return i
    expected, why = _parse_expected(expected_text)
    if expected is None:
        skipped.append(Skipped(start, shown, why))
        return i
    checks.append(Check("call", call, expected, start, style="input/output"))
    return i


# --- another name -----------------------------------------------------------------------------


def _aliased(
    lines: list[str], ctx: _Ctx, taken: set[int], module_names: Collection[str]
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
        text = _clean(raw)
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
    mentions = sum(1 for i, t in enumerate(lines) if i not in taken and _calls(t, other))
    if mentions != len(examples):
        return []  # the name is also used in prose: maybe another function after all
    alias = _Ctx(other, ctx.params, ctx.required, ctx.deadline, ctx.equals_is_definition)
    checks: list[Check] = []
    for i, text in examples:
        ctx.spend(i)
        check, _ = _parse_example(text, alias)
        if check is None:
            return []  # all or nothing: one unreadable line makes the reading doubtful
        call = ctx.name + check[0][len(other) :]
        checks.append(Check("call", call, check[1], i, style=f"{check[2]} (written as {other})"))
    return checks


def _calls_after_marker(text: str) -> bool:
    """``name(...)`` at the start of ``text`` followed by a result marker other than "="."""
    m = _NAME_CALL.match(text)
    end = _close_of(text, m.end() - 1) if m else -1
    return end >= 0 and _marker_at(text[end + 1 :].lstrip()) not in (None, "=")
