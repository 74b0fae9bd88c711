"""Extract checkable examples from a docstring.

Two kinds of check come out:

- ``doctest``: ``>>>`` examples, parsed by :mod:`doctest` itself so that multi-line
  sources, ``# doctest: +ELLIPSIS`` style directives and expected exceptions keep
  their doctest meaning.
- ``call``: the informal styles real docstrings use, one example per logical line:
  ``f(x) == y``, ``f(x) -> y``, ``f(x) => y``, ``f(x) ==> y``, ``f(x) ➞ y``,
  ``f(x) returns y``, ``f(x) should return y``, ``f(x) = y``, ``f(x)  # returns y``,
  and ``Input: ... / Output: ...`` pairs.

Precision comes first: a check that fails on a correct implementation is a false
alarm that hides good suggestions. So an informal example is kept only when the left
side is a call of the function itself whose arguments are all Python literals, and the
right side is a Python literal; anything else is reported in ``skipped`` with a reason.
"""

from __future__ import annotations

import ast
import doctest
import re
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field

from phi_lsp.verify import compare  # noqa: F401  (registers pytest's doctest flag names)

# Longest first: "==>" must win over "==" and "=", "=>" over "=".
_ARROWS = ("==>", "==", "=>", "->", "➞", "→", "⇒", "=")
_WORDS = (" should return ", " returns ", " return ")
_BULLET = re.compile(r"^(?:[-*•]\s+|\d+[.)]\s+)")
_LEAD = re.compile(
    r"^(?:e\.g\.|i\.e\.|example\s*\d*\s*:|examples?\s*:|for example\s*[:,])\s*", re.I
)
_INPUT = re.compile(r"^input\s*:\s*(.*)$", re.I)
_OUTPUT = re.compile(r"^output\s*:\s*(.*)$", re.I)
_MAX_LINES_JOINED = 12


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


def extract(
    docstring: str,
    function_name: str,
    params: Sequence[str] | None = None,
    required: int | None = None,
) -> ExtractResult:
    """All examples of ``function_name`` found in ``docstring``.

    ``docstring`` is the raw string value (not cleaned), so that line numbers match the
    file. ``params``, when known, are the function's parameter names (without ``self``);
    they let ``Input: a = 1, b = 2`` become a keyword call and reject calls that cannot
    bind; ``required`` is how many of them have no default. ``function_name`` may be ``Class.method``: only doctests are taken then, as
    an informal ``method(x)`` has no instance to run on.
    """
    checks: list[Check] = []
    skipped: list[Skipped] = []
    doctest_lines: set[int] = set()
    try:
        parts = doctest.DocTestParser().parse(docstring, function_name)
    except ValueError as e:  # e.g. inconsistent indentation in a >>> block
        skipped.append(Skipped(_error_line(str(e)), "", f"doctest could not parse it: {e}"))
        parts = []
        for i, text in enumerate(docstring.splitlines()):
            if text.lstrip().startswith((">>>", "...")):
                doctest_lines.add(i)
    for part in parts:
        if not isinstance(part, doctest.Example):
            continue
        want_lines = part.want.splitlines(keepends=True)
        cut = _informal_in_want(want_lines, function_name)
        if cut is not None and part.exc_msg is None:
            # ">>> f(1)\n2\nf(2) == 4" with no blank line between: doctest would read
            # "f(2) == 4" as more expected output; the author meant another example.
            part.want = "".join(want_lines[:cut])
        src_lines = part.source.count("\n")
        n_lines = src_lines + part.want.count("\n")
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
    short = function_name.rsplit(".", 1)[-1]
    lines = docstring.splitlines()
    if "." in function_name:
        for i, text in enumerate(lines):
            if i not in doctest_lines and _calls(text, short):
                skipped.append(
                    Skipped(i, text.strip(), "informal example of a method: no instance to run")
                )
        return ExtractResult(checks, skipped)
    informal, informal_skipped = _informal(lines, short, params, required, doctest_lines)
    checks.extend(informal)
    skipped.extend(informal_skipped)
    checks.sort(key=lambda c: c.line)
    return ExtractResult(checks, skipped)


def _informal_in_want(want_lines: list[str], function_name: str) -> int | None:
    """Index of the first want line (after the first) that is an informal example."""
    if "." in function_name:
        return None
    for k, text in enumerate(want_lines[1:], start=1):
        check, _ = _parse_example(_clean(text), function_name, None, None, False)
        if check is not None:
            return k
    return None


def _is_comparison(source: str) -> bool:
    try:
        tree = ast.parse(source)
    except SyntaxError:
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
    return re.search(rf"(?<![\w.]){re.escape(name)}\s*\(", text) is not None


# --- informal examples ------------------------------------------------------------------


def _informal(
    lines: list[str],
    name: str,
    params: Sequence[str] | None,
    required: int | None,
    taken: set[int],
) -> tuple[list[Check], list[Skipped]]:
    checks: list[Check] = []
    skipped: list[Skipped] = []
    # "f(n) = 1 + n / 2" defines f in maths notation: "=" is no example marker then.
    equals_is_definition = any(_is_definition(t, name) for t in lines)
    i = 0
    while i < len(lines):
        if i in taken:
            i += 1
            continue
        text = _clean(lines[i])
        m_in = _INPUT.match(text)
        if m_in:
            i = _input_output(
                lines, i, m_in.group(1), name, params, required, taken, checks, skipped
            )
            continue
        if not _calls(text, name):
            i += 1
            continue
        # A call whose brackets close on a later line (a list written over lines).
        start, logical = i, text
        while _open_brackets(logical) > 0 and i + 1 < len(lines) and i - start < _MAX_LINES_JOINED:
            if i + 1 in taken:
                break
            i += 1
            logical += " " + _clean(lines[i])
        i += 1
        check, reason = _parse_example(logical, name, params, required, equals_is_definition)
        if check is not None:
            checks.append(
                Check("call", check[0], check[1], start, style=check[2]),
            )
        elif reason:
            skipped.append(Skipped(start, logical, reason))
    return checks, skipped


def _clean(text: str) -> str:
    text = text.strip()
    text = _BULLET.sub("", text)
    for _ in range(2):
        text = _LEAD.sub("", text)
    return text.strip()


def _code_chars(text: str) -> Iterator[tuple[int, str]]:
    """(index, char) of ``text`` outside string literals (a rough one-line scan)."""
    quote, escaped = "", False
    for k, ch in enumerate(text):
        if quote:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        else:
            yield k, ch


def _open_brackets(text: str) -> int:
    """Unclosed ( [ { outside string literals (a rough count, good enough to join lines)."""
    return sum((ch in "([{") - (ch in ")]}") for _, ch in _code_chars(text))


def _is_definition(text: str, name: str) -> bool:
    m = re.match(rf"\s*{re.escape(name)}\s*\((.*?)\)\s*=(?![=>])", _clean(text))
    if not m:
        return False
    call = _parse_call(f"{name}({m.group(1)})", name, None)
    return call is None


def _parse_example(
    text: str,
    name: str,
    params: Sequence[str] | None,
    required: int | None,
    equals_is_definition: bool,
) -> tuple[tuple[str, str, str] | None, str]:
    """(call source, expected source, style), or None and why it was skipped."""
    for word in ("assert ", "for "):  # "assert f(1) == 2", "for f(1) == 2" (after "For example")
        if text.startswith(word) and _calls(text[len(word) :].lstrip()[: len(name) + 1], name):
            text = text[len(word) :].lstrip()
    # "f(x)  # returns y" / "f(x) # => y": the comment holds the result.
    text = re.sub(r"\s+#\s*(?=(?:returns?|should return|==>|==|=>|->|➞)\s)", " ", text)
    found: list[tuple[str, str, str]] = []
    why = ""
    for sep in (*_ARROWS, *_WORDS):
        if sep == "=" and equals_is_definition:
            continue
        start = 0
        while True:
            k = text.find(sep, start)
            if k < 0:
                break
            start = k + 1
            left, right = text[:k].strip(), text[k + len(sep) :].strip()
            call = _parse_call(left, name, params, required)
            if call is None:
                continue
            expected, why_not = _parse_expected(right)
            if expected is None:
                why = why or why_not
                continue
            style = sep.strip()
            found.append((call, expected, style))
        if found:
            break
    if not found:
        if why:
            return None, why
        if _calls(text, name) and not _literal_args_somewhere(text, name):
            return None, "the call's arguments are not Python literals"
        if equals_is_definition and re.search(r"\)\s*=[^=>]", text):
            return None, "the docstring writes f(...) = ... as a definition, not an example"
        if _parse_call(text, name, params, required):
            return None, "a call with no result written after it"
        return (
            None,
            "no result marker (==, ->, =>, returns, ...) after a call with literal arguments",
        )
    distinct = {(c, e) for c, e, _ in found}
    if len(distinct) > 1:
        return None, "ambiguous: more than one way to split this line"
    return found[0], ""


def _parse_call(
    text: str, name: str, params: Sequence[str] | None, required: int | None = None
) -> str | None:
    """``text`` if it is exactly ``name(<literals>)`` and could bind to ``params``."""
    try:
        node = ast.parse(text, mode="eval").body
    except SyntaxError:
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


def _literal_args_somewhere(text: str, name: str) -> bool:
    """Does some ``name(...)`` in ``text`` have only literal arguments?"""
    for m in re.finditer(rf"(?<![\w.]){re.escape(name)}\s*\(", text):
        for end in range(m.end(), len(text) + 1):
            if text[end - 1 : end] == ")" and _parse_call(text[m.start() : end], name, None):
                return True
    return False


_WORD_LITERALS = {"true": "True", "false": "False", "none": "None", "null": "None"}


def _parse_expected(text: str) -> tuple[str | None, str]:
    text = _strip_comment(text).strip()
    if not text:
        return None, "nothing after the result marker"
    # "=> true": the whole result is one word that can only mean the Python constant.
    word = text.rstrip(".").strip()
    if word.lower() in _WORD_LITERALS and word not in _WORD_LITERALS.values():
        return _WORD_LITERALS[word.lower()], ""
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
    return None, f"the expected result '{text}' is not a Python literal"


def _parenthesized_single(text: str, node: ast.expr) -> bool:
    # ("Venus") is the string, but people write it for the tuple ("Venus",).
    return text.startswith("(") and not isinstance(node, ast.Tuple)


def _strip_comment(text: str) -> str:
    return next((text[:k] for k, ch in _code_chars(text) if ch == "#"), text)


def _input_output(
    lines: list[str],
    i: int,
    first: str,
    name: str,
    params: Sequence[str] | None,
    required: int | None,
    taken: set[int],
    checks: list[Check],
    skipped: list[Skipped],
) -> int:
    """Parse ``Input: ...`` (possibly over lines) followed by ``Output: ...``; return next i."""
    start = i
    args = first.strip()
    i += 1
    while i < len(lines) and i not in taken and not _OUTPUT.match(_clean(lines[i])):
        nxt = _clean(lines[i])
        if not nxt or _INPUT.match(nxt) or (args and _open_brackets(args) <= 0):
            break
        args += " " + nxt
        i += 1
    m_out = _OUTPUT.match(_clean(lines[i])) if i < len(lines) else None
    if not m_out:
        skipped.append(Skipped(start, f"Input: {args}", "an Input: with no Output: after it"))
        return i
    out_line = i
    expected_text = m_out.group(1)
    i += 1
    while _open_brackets(expected_text) > 0 and i < len(lines) and i - out_line < _MAX_LINES_JOINED:
        expected_text += " " + _clean(lines[i])
        i += 1
    shown = f"Input: {args} Output: {expected_text.strip()}"
    if not args:
        skipped.append(Skipped(start, shown, "the input is not written on the Input: line"))
        return i
    call = _parse_call(f"{name}({_strip_comment(args).strip()})", name, params, required)
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
