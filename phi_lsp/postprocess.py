"""Where a suggestion ends, and clean-up before it is shown.

One ``Stopper`` per request. The engine calls it after every token (``stop_fn``), so
generation ends as soon as a rule fires; the same rules cut the final text:

- the body ends: a line dedented below the body's indentation (a new top-level
  ``def``/``class``/decorator/``if __name__`` is such a line), unless the line
  continues an open bracket, string or backslash;
- the suggestion would repeat the text that follows the cursor (the next line of
  the suffix, or the rest of the cursor's line);
- with text after the cursor on its line, the suggestion is that one line.

Then trailing whitespace goes, and if the function would no longer parse while a
shorter suggestion parses, lines are dropped from the end until it does.
"""

from __future__ import annotations

import ast
import warnings
from dataclasses import dataclass

from phi_lsp.context import Context
from phi_lsp.documents import indent_of as _indent
from phi_lsp.documents import indent_width as _width


@dataclass
class _Lex:
    """Just enough of Python's lexer to know whether a line continues the previous one."""

    depth: int = 0
    quote: str = ""  # open string delimiter: ' " ''' or \"\"\"
    backslash: bool = False

    def feed(self, text: str) -> list[bool]:
        """Consume ``text``; for each "\\n" in it, whether the next line is a continuation."""
        out: list[bool] = []
        i, n = 0, len(text)
        while i < n:
            ch = text[i]
            if self.quote:
                if ch == "\\":
                    i += 2
                    continue
                if text.startswith(self.quote, i):
                    i += len(self.quote)
                    self.quote = ""
                    continue
                if ch == "\n":
                    if len(self.quote) == 1:  # unterminated one-line string: give up on it
                        self.quote = ""
                    out.append(bool(self.quote) or self.depth > 0)
                i += 1
                continue
            if ch == "#":
                j = text.find("\n", i)
                i = n if j < 0 else j
                continue
            if ch in "\"'":
                q = text[i : i + 3]
                self.quote = q if q in ('"""', "'''") else ch
                i += len(self.quote)
                continue
            if ch == "\\" and text.startswith("\n", i + 1):
                self.backslash = True
                i += 1
                continue
            if ch in "([{":
                self.depth += 1
            elif ch in ")]}":
                self.depth = max(0, self.depth - 1)
            elif ch == "\n":
                out.append(self.depth > 0 or self.backslash)
                self.backslash = False
            i += 1
        return out

    def copy(self) -> _Lex:
        return _Lex(self.depth, self.quote, self.backslash)


class Stopper:
    """Stop rules for one request. ``stopper(text)`` is the engine's ``stop_fn``."""

    def __init__(self, ctx: Context, forced_prefix: str = "") -> None:
        self.ctx = ctx
        self.forced = forced_prefix
        self.body_width = _width(ctx.indent)
        self.single_line = bool(ctx.rest_of_line.strip())
        self.rest = ctx.rest_of_line.strip()
        # The first non-blank line after the cursor's line: generating it again is a repeat.
        self.next_line = ""
        for line in ctx.suffix.split("\n")[1:]:
            if line.strip():
                self.next_line = line.rstrip()
                break
        # Lexer state at the cursor (is it inside a bracket or string already?).
        self._start = _Lex()
        self._start.feed(ctx.prefix)

    def __call__(self, generated: str) -> bool:
        return self.cut(generated)[1]

    def insertion(self, generated: str) -> str:
        """The model's text minus the forced prefix: what goes at the cursor."""
        if generated.startswith(self.forced):
            return generated[len(self.forced) :]
        # An engine that reproduced the forced whitespace only loosely (a "\r" lost):
        # drop its leading whitespace when it is the same up to carriage returns.
        body = generated.lstrip(" \t\r\n")
        ws = generated[: len(generated) - len(body)]
        if self.forced and ws.replace("\r", "") == self.forced.replace("\r", ""):
            return body
        return generated  # an engine that ignored the forced prefix: take its text as is

    def cut(self, generated: str, final: bool = False) -> tuple[str, bool]:
        """(text to insert, whether a stop rule fired). ``generated`` includes the forced prefix."""
        if len(generated) <= len(self.forced) and not final:
            return "", False
        ins = self.insertion(generated)
        if self.single_line:
            nl = ins.find("\n")
            if nl >= 0:
                return self._strip_rest(ins[:nl]), True
            return (self._strip_rest(ins) if final else ins), False
        lines = ins.split("\n")
        lex = self._start.copy()
        cont = [False, *lex.feed(ins)]
        # The cursor's own line: if it was blank, its first word sets its indentation.
        if not self.ctx.line_prefix.strip() and lines[0].strip():
            full = self.ctx.line_prefix + lines[0]
            if not cont[0] and _width(_indent(full)) < self.body_width and not self._start.depth:
                return "", True
        for i in range(1, len(lines)):
            line = lines[i]
            if cont[i] or not line.strip():
                continue
            if _width(_indent(line)) < self.body_width:
                return "\n".join(lines[:i]), True
            complete = i < len(lines) - 1
            if (complete or final) and self.next_line and line.rstrip() == self.next_line:
                return "\n".join(lines[:i]), True
        return ins, False

    def _strip_rest(self, line: str) -> str:
        """Drop the end of ``line`` that the text after the cursor already has."""
        rest = self.rest
        for k in range(min(len(line), len(rest)), 0, -1):
            if line.endswith(rest[:k]):
                return line[:-k]
        return line

    def finish(self, generated: str, truncated: bool = False) -> str:
        """The final suggestion: cut, trimmed, and leaving the function parseable."""
        text, _ = self.cut(generated, final=True)
        lines = text.rstrip().split("\n")
        if truncated and len(lines) > 1:
            lines.pop()  # max_new_tokens cut the last line short
        text = "\n".join(x.rstrip() for x in lines).rstrip()
        if self.single_line:
            return text
        return valid_cut(self.ctx, text)


def _function_rest(ctx: Context) -> str:
    """Text after the cursor that still belongs to the (outermost) function."""
    first = ctx.prefix.split("\n", 1)[0]
    top = _width(_indent(first))
    lines = ctx.suffix.split("\n")
    keep = [lines[0]]
    for line in lines[1:]:
        if line.strip() and _width(_indent(line)) <= top:
            break
        keep.append(line)
    return "\n".join(keep)


def parses(code: str) -> bool:
    first = code.split("\n", 1)[0]
    if first[:1] in (" ", "\t"):
        code = "if 1:\n" + code  # a method or nested def on its own
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # invalid escape sequences in user code
            ast.parse(code)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return False
    return True


def valid_cut(ctx: Context, text: str) -> str:
    """``text``, or its longest line-prefix that keeps the function parseable."""
    rest = _function_rest(ctx)
    if parses(ctx.prefix + text + rest):
        return text
    lines = text.split("\n")
    for k in range(len(lines) - 1, 0, -1):
        cand = "\n".join(lines[:k]).rstrip()
        if parses(ctx.prefix + cand + rest):
            return cand
    # No line-prefix of the suggestion parses. If some statement at the cursor could
    # (the prefix allows a valid function), show nothing rather than broken code; if
    # the function is broken before the cursor anyway, nothing can help: keep the text.
    fillers = ("", "pass", "\n" + ctx.indent + "pass")
    return "" if any(parses(ctx.prefix + f + rest) for f in fillers) else text
