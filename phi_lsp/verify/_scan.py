"""Bounded scanning of a docstring's text: string literals, brackets, and the Python
literals an informal example is made of.

Every function here is linear in its input: a call's extent is found by one bracket
scan (never by trying every split), and ``ast`` parses only spans that already look
like literals.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence

_MAX_DEPTH = 100  # brackets nested in one example (Python's parser stops at 200)

_BULLET = re.compile(r"^(?:[-*•]\s+|\d+[.)]\s+)")
_LEAD = re.compile(
    r"^(?:e\.g\.|i\.e\.|example(?:\s*\d+)?\s*:|examples?\s*:|for example\s*[:,])\s*", re.I
)
_WORD_TOKEN = re.compile(r"[-+]?[\w.]+")


def calls(text: str, name: str) -> bool:
    return re.search(rf"(?<![\w.]){re.escape(name)}[ \t]*\(", text) is not None


def clean(text: str) -> str:
    text = text.strip()
    text = _BULLET.sub("", text)
    for _ in range(2):
        text = _LEAD.sub("", text)
    return text.strip()


# A string literal: to its closing quote, or to the end when unterminated (a rough
# one-line reading, no prefixes or triple quotes); with _BRACKET_TOKEN, or a bracket. The
# branches start with different characters, so the regexes never backtrack; scanning goes
# token by token at C speed, not character by character in Python.
_STRING = re.compile(r"""'(?:[^'\\]|\\.)*'?|"(?:[^"\\]|\\.)*"?""", re.S)
_BRACKET_TOKEN = re.compile(r"""'(?:[^'\\]|\\.)*'?|"(?:[^"\\]|\\.)*"?|[()\[\]{}]""", re.S)


def _blank_strings(text: str) -> str:
    """``text`` with each string literal's characters replaced (same length, same indices)."""
    return _STRING.sub(lambda m: "'" * (m.end() - m.start()), text)


def open_brackets(text: str) -> int:
    """Unclosed ( [ { outside string literals (a rough count, good enough to join lines)."""
    code = _STRING.sub("", text)
    opens = code.count("(") + code.count("[") + code.count("{")
    return opens - code.count(")") - code.count("]") - code.count("}")


def close_of(text: str, open_at: int) -> int:
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


def literal_end(text: str, i: int) -> int:
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
        close = close_of(text, i)
        return close + 1 if close >= 0 else -1
    m = _WORD_TOKEN.match(text, i)
    return m.end() if m else -1


def _is_literal(src: str) -> bool:
    try:
        ast.literal_eval(ast.parse(src, mode="eval").body)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False
    return True


def parse_call(
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


def parse_expected(text: str) -> tuple[str | None, str]:
    text = strip_comment(text).strip()
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
    value = node.value if isinstance(node, ast.Constant) else None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if abs(value) > 1e12:
            raise ValueError("too big")
        return value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        v = _arith(node.operand, budget)
        return -v if isinstance(node.op, ast.USub) else v
    if isinstance(node, ast.BinOp) and type(node.op) in _ARITH_OPS:
        return _ARITH_OPS[type(node.op)](_arith(node.left, budget), _arith(node.right, budget))
    raise ValueError("not arithmetic")


def _parenthesized_single(text: str, node: ast.expr) -> bool:
    # ("Venus") is the string, but people write it for the tuple ("Venus",).
    return text.startswith("(") and not isinstance(node, ast.Tuple)


def strip_comment(text: str) -> str:
    if "#" not in text:
        return text
    k = _blank_strings(text).find("#")
    return text[:k] if k >= 0 else text
