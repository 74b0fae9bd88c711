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
import doctest
import re
from collections.abc import Collection, Sequence

from phi_lsp.verify import compare  # noqa: F401  (registers pytest's doctest flag names)
from phi_lsp.verify._checks import (
    MAX_CANDIDATES,
    MAX_DOCSTRING_CHARS,
    MAX_EXAMPLE_CHARS,
    MAX_EXAMPLES,
    Check,
    Ctx,
    Exhausted,
    ExtractResult,
    OutOfTime,
    Skipped,
)
from phi_lsp.verify._informal import aliased, informal, parse_example
from phi_lsp.verify._scan import calls, clean

__all__ = [
    "MAX_CANDIDATES",
    "MAX_DOCSTRING_CHARS",
    "MAX_EXAMPLE_CHARS",
    "MAX_EXAMPLES",
    "Check",
    "ExtractResult",
    "Skipped",
    "extract",
]


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
    ctx = Ctx(function_name.rsplit(".", 1)[-1], params, required, deadline)
    try:
        _extract(docstring, function_name, ctx, module_names)
    except OutOfTime:
        why = "reading the examples took longer than its time budget; none are run"
        return ExtractResult([], [Skipped(0, "", why)])
    except Exhausted as e:
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


def _extract(docstring: str, function_name: str, ctx: Ctx, module_names: Collection[str]) -> None:
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
            if i not in doctest_lines and calls(text, ctx.name):
                skipped.append(
                    Skipped(i, text.strip(), "informal example of a method: no instance to run")
                )
        return
    before = len(checks)
    informal(lines, ctx, doctest_lines)
    if len(checks) == before and not any(calls(t, ctx.name) for t in lines):
        checks.extend(aliased(lines, ctx, doctest_lines, module_names))


def _nth(text: str, sub: str, n: int) -> int:
    """Index of the n-th (1-based) occurrence of ``sub``, or -1."""
    k = -1
    for _ in range(n):
        k = text.find(sub, k + 1)
        if k < 0:
            return -1
    return k


def _informal_in_want(want_lines: list[str], first_line: int, ctx: Ctx) -> int | None:
    """Index of the first want line (after the first) that is an informal example."""
    for k, text in enumerate(want_lines[1:], start=1):
        cleaned = clean(text)
        if len(cleaned) <= MAX_EXAMPLE_CHARS and calls(cleaned, ctx.name):
            ctx.spend(first_line + k)
            check, _ = parse_example(cleaned, ctx)
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
