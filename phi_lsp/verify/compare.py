"""Host-side verdicts: does what an example produced match what its docstring expects?

The sandbox reports each example raw, as strings (``{"out", "exc", "value"}``, see
docs/contracts.md §3); nothing it says is believed beyond that. :func:`judge` decides
from those strings alone, on the trusted side, and never evaluates them as code:

- ``doctest`` checks are judged as ``pytest --doctest-modules`` judges them: doctest's
  ``OutputChecker`` with the example's directives over the project's
  ``doctest_optionflags``, expected exceptions compared on their message line (with
  ``IGNORE_EXCEPTION_DETAIL``), ``+SKIP``, and pytest's own ``ALLOW_UNICODE``,
  ``ALLOW_BYTES`` and ``NUMBER`` flags. No leniency beyond pytest's: ``"21"`` written for
  ``'21'`` fails here as it fails under pytest (agreement with pytest is the goal).
- ``call`` checks (informal examples, which pytest never runs) compare the repr of the
  value with the expected literal as Python values (``ast.literal_eval`` on both, so quote
  style and spacing do not matter), a float written to n decimals matching the value
  rounded or truncated to n decimals.

Everything is bounded: long texts are judged in linear time or compared as plain
strings, deep literals fail to parse instead of recursing, and the text shown as "got"
is cut to :data:`GOT_CAP` characters.
"""

from __future__ import annotations

import ast
import doctest
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

# pytest registers these on doctest's table when it collects doctests; the same names must
# parse as directives in docstrings we extract from (``# doctest: +NUMBER``).
ALLOW_UNICODE = doctest.register_optionflag("ALLOW_UNICODE")
ALLOW_BYTES = doctest.register_optionflag("ALLOW_BYTES")
NUMBER = doctest.register_optionflag("NUMBER")

# The names pytest accepts in ``doctest_optionflags`` (``_pytest.doctest._get_flag_lookup``).
PROJECT_FLAGS: dict[str, int] = {
    "DONT_ACCEPT_TRUE_FOR_1": doctest.DONT_ACCEPT_TRUE_FOR_1,
    "DONT_ACCEPT_BLANKLINE": doctest.DONT_ACCEPT_BLANKLINE,
    "NORMALIZE_WHITESPACE": doctest.NORMALIZE_WHITESPACE,
    "ELLIPSIS": doctest.ELLIPSIS,
    "IGNORE_EXCEPTION_DETAIL": doctest.IGNORE_EXCEPTION_DETAIL,
    "COMPARISON_FLAGS": doctest.COMPARISON_FLAGS,
    "ALLOW_UNICODE": ALLOW_UNICODE,
    "ALLOW_BYTES": ALLOW_BYTES,
    "NUMBER": NUMBER,
}
# pytest's default when the project sets no ``doctest_optionflags``.
PYTEST_DEFAULT_FLAGS = ("ELLIPSIS",)

GOT_CAP = 4000  # characters of "got" kept for display
LITERAL_CAP = 1 << 18  # longer value reprs are compared as text, not parsed
_NUMBER_CAP = 10_000  # numbers per text NUMBER rewrites (pytest has no cap; we must)


class CheckLike(Protocol):
    """What judging reads of an example (read-only, so a frozen ``Check`` fits)."""

    @property
    def kind(self) -> str: ...  # "doctest" | "call"
    @property
    def expected(self) -> str: ...  # doctest want, or the expected literal's source
    @property
    def exc_msg(self) -> str | None: ...
    @property
    def options(self) -> Mapping[str, bool]: ...


def judge(
    check: CheckLike, raw: Mapping[str, Any], project_flags: Iterable[str] = ()
) -> tuple[bool, str]:
    """(ok, the text to show as "got") for one example's raw result.

    ``raw`` is the runner's row, already checked for types by the sandbox:
    ``out`` (captured stdout, with the displayhook's repr), ``exc`` (the
    ``traceback.format_exception_only`` text, or None), ``value`` (a ``call``
    example's repr, or None). ``project_flags`` are the project's
    ``doctest_optionflags`` names (pytest's default is :data:`PYTEST_DEFAULT_FLAGS`).
    """
    out = _text(raw.get("out"))
    exc = raw.get("exc")
    exc = exc if isinstance(exc, str) else None
    if check.kind == "doctest":
        return _judge_doctest(check, out, exc, project_flags)
    if check.kind == "call":
        value = raw.get("value")
        return _judge_call(check.expected, value if isinstance(value, str) else None, exc)
    return False, f"unknown kind of check: {str(check.kind)[:40]!r}"


def flags_for(options: Mapping[str, bool], project_flags: Iterable[str] = ()) -> int:
    """The option flags doctest runs an example with: the project's, then its directives."""
    flags = 0
    for name in project_flags:
        flags |= PROJECT_FLAGS.get(name, 0)  # pytest rejects unknown names at start-up
    for name, on in options.items():
        flag = doctest.OPTIONFLAGS_BY_NAME.get(name, 0)
        flags = flags | flag if on else flags & ~flag
    return flags


# --- doctest ----------------------------------------------------------------------------------


class _Checker(doctest.OutputChecker):
    """doctest's checker plus pytest's ALLOW_UNICODE / ALLOW_BYTES / NUMBER
    (``_pytest.doctest.LiteralsOutputChecker``), with the same results."""

    _unicode_re = re.compile(r"(\W|^)[uU]([rR]?[\'\"])", re.UNICODE)
    _bytes_re = re.compile(r"(\W|^)[bB]([rR]?[\'\"])", re.UNICODE)
    _number_re = re.compile(
        r"""
        (?P<number>
          (?P<mantissa>
            (?P<integer1> [+-]?\d*)\.(?P<fraction>\d+)
            |
            (?P<integer2> [+-]?\d+)\.
          )
          (?:
            [Ee]
            (?P<exponent1> [+-]?\d+)
          )?
          |
          (?P<integer3> [+-]?\d+)
          (?:
            [Ee]
            (?P<exponent2> [+-]?\d+)
          )
        )
        """,
        re.VERBOSE,
    )

    def check_output(self, want: str, got: str, optionflags: int) -> bool:
        if super().check_output(want, got, optionflags):
            return True
        if not optionflags & (ALLOW_UNICODE | ALLOW_BYTES | NUMBER):
            return False
        if optionflags & ALLOW_UNICODE:
            want = self._unicode_re.sub(r"\1\2", want)
            got = self._unicode_re.sub(r"\1\2", got)
        if optionflags & ALLOW_BYTES:
            want = self._bytes_re.sub(r"\1\2", want)
            got = self._bytes_re.sub(r"\1\2", got)
        if optionflags & NUMBER:
            got = self._remove_unwanted_precision(want, got)
        return super().check_output(want, got, optionflags)

    def _remove_unwanted_precision(self, want: str, got: str) -> str:
        wants = _first(self._number_re.finditer(want), _NUMBER_CAP + 1)
        gots = _first(self._number_re.finditer(got), _NUMBER_CAP + 1)
        if len(wants) != len(gots) or len(wants) > _NUMBER_CAP:
            return got
        pieces, last = [], 0
        for w, g in zip(wants, gots, strict=True):
            pieces.append(got[last : g.start()])
            pieces.append(w.group() if _number_close(w, g) else g.group())
            last = g.end()
        pieces.append(got[last:])
        return "".join(pieces)  # one join: pytest's repeated slicing is quadratic


def _first(it: Iterable[re.Match[str]], n: int) -> list[re.Match[str]]:
    found = []
    for m in it:
        found.append(m)
        if len(found) >= n:
            break
    return found


def _number_close(w: re.Match[str], g: re.Match[str]) -> bool:
    """pytest: ``float(want) == approx(float(got), abs=10**-precision)``."""
    try:
        exponent = w.group("exponent1") or w.group("exponent2")
        precision = len(w.group("fraction") or "")
        if exponent is not None:
            precision -= int(exponent)
        want, got = float(w.group()), float(g.group())
    except (ValueError, OverflowError):  # absurd exponents: pytest would crawl or crash
        return False
    if want == got:
        return True
    if math.isinf(want) or math.isinf(got) or math.isnan(want) or math.isnan(got):
        return False
    try:
        abs_tol = 10.0**-precision
    except OverflowError:
        abs_tol = math.inf
    # approx's tolerance: max(relative 1e-6 of the expected (here: got), abs)
    return abs(want - got) <= max(1e-6 * abs(got), abs_tol)


_CHECKER = _Checker()


def _judge_doctest(
    check: CheckLike, out: str, exc: str | None, project_flags: Iterable[str]
) -> tuple[bool, str]:
    flags = flags_for(check.options, project_flags)
    if flags & doctest.SKIP:
        return True, "(skipped by directive)"
    want = check.expected
    if exc is None:
        return _CHECKER.check_output(want, out, flags), _short(out)
    got = out + exc
    if check.exc_msg is None:
        return False, _short(got)  # an exception nobody expected
    line = _exception_message(exc)
    ok = _CHECKER.check_output(check.exc_msg, line, flags)
    if not ok and flags & doctest.IGNORE_EXCEPTION_DETAIL:
        ok = _CHECKER.check_output(_strip_details(check.exc_msg), _strip_details(line), flags)
    return ok, _short(got)


def _exception_message(exc: str) -> str:
    """What doctest compares with the expected exception: the ``Name: message`` part of
    ``format_exception_only`` (a SyntaxError's text starts with ``File ...`` and the
    offending line; doctest looks only at what follows)."""
    if not exc.startswith(" "):
        return exc
    lines = exc.splitlines(keepends=True)
    for k, text in enumerate(lines):
        if text[:1] not in (" ", ""):
            return "".join(lines[k:])
    return lines[-1] if lines else exc


def _strip_details(msg: str) -> str:
    return doctest._strip_exception_details(msg)  # type: ignore[attr-defined]


# --- call (informal examples) -----------------------------------------------------------------


def _judge_call(expected_src: str, value: str | None, exc: str | None) -> tuple[bool, str]:
    if exc is not None:
        return False, _short(exc.rstrip("\n"))
    if value is None:
        return False, "(no value)"
    shown = _short(value)
    try:
        expected = ast.literal_eval(expected_src)
        digits = _decimals(expected_src)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False, shown  # extraction only keeps literals; be safe anyway
    if len(value) > LITERAL_CAP:
        return value.strip() == expected_src.strip(), shown
    try:
        got = ast.literal_eval(value)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        # Not a literal (an object's repr, ``set()``, ``inf``): only the same text matches.
        return value.strip() == expected_src.strip(), shown
    try:
        return _close(got, expected, digits), shown
    except (RecursionError, OverflowError, ValueError):  # 10**400 as a float, and such
        return False, shown


def _close(got: Any, expected: Any, digits: int | None) -> bool:
    """``got == expected``, with a float written to n decimals matching its rounding or
    truncation to n decimals (docstrings show floats as people print them)."""
    if type(expected) is float and type(got) in (float, int) and digits is not None:
        if got == expected:
            return True
        if not math.isfinite(got):
            return False
        scale = 10.0**digits
        rounded = round(got, digits)
        truncated = int(got * scale + (1e-9 if got >= 0 else -1e-9)) / scale
        return abs(rounded - expected) < 1e-9 or abs(truncated - expected) < 1e-9
    if type(expected) in (list, tuple) and type(got) is type(expected):
        return len(got) == len(expected) and all(
            _close(g, e, digits) for g, e in zip(got, expected, strict=True)
        )
    if type(expected) is dict and type(got) is dict:
        return got.keys() == expected.keys() and all(
            _close(got[k], v, digits) for k, v in expected.items()
        )
    return bool(got == expected)


def _decimals(src: str) -> int | None:
    """Decimals written in the expected literal's floats (the fewest, if several)."""
    found = []
    lines = [line.encode() for line in src.splitlines()]  # offsets are UTF-8 bytes
    for node in ast.walk(ast.parse(src, mode="eval")):
        if isinstance(node, ast.Constant) and type(node.value) is float:
            if node.end_lineno != node.lineno or node.end_col_offset is None:
                continue
            text = lines[node.lineno - 1][node.col_offset : node.end_col_offset]
            if b"." in text and b"e" not in text.lower():
                found.append(len(text.split(b".", 1)[1]))
    return min(found) if found else None


def _text(x: object) -> str:
    return x if isinstance(x, str) else ""


def _short(text: str) -> str:
    if len(text) > GOT_CAP:
        return text[:GOT_CAP] + f"... [{len(text) - GOT_CAP} more characters]"
    return text
