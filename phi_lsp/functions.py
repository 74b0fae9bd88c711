"""Which function is here? The one answer, read from a document's tree-sitter tree.

- ``at_cursor(doc, offset)``: the innermost def whose *body* holds the cursor (what the
  editor completes), judged by the tree and by indentation; ``scan_at_cursor`` is the
  line-based fallback when error recovery lost the def.
- ``in_file(doc)``: every def (nested and methods too), in file order, with its lines
  and whether its body is still to write; ``at_line``, ``named`` (``name`` or
  ``Class.method``), ``select`` (what ``phi-lsp complete`` fills) and ``runnable_at``
  (the top-level function or method that holds a line: what a verification runs).
- ``body_slot(doc, fn)``: where a generated body goes.

Also the small facts about a def node that the context reader shares (header colon,
docstring, decorators, qualified name, body indentation). Nothing here raises on bad
source; ``select`` raises ``TargetError`` for a request that names no function.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import tree_sitter

from phi_lsp.documents import Document, indent_of, indent_width

__all__ = [
    "BodySlot",
    "FunctionInfo",
    "TargetError",
    "at_cursor",
    "at_line",
    "body_slot",
    "in_file",
    "named",
    "runnable_at",
    "scan_at_cursor",
    "select",
    "syntax_error_line",
]

_DEF_LINE = re.compile(r"^([ \t]*)(?:async[ \t]+)?def[ \t]+([A-Za-z_]\w*)")


class TargetError(ValueError):
    """A request names no function of the source (bad line, unknown name, ...)."""


# --- facts about one def/class node --------------------------------------------------


def node_text(doc: Document, node: tree_sitter.Node) -> str:
    return doc.source_bytes[node.start_byte : node.end_byte].decode("utf-8", errors="replace")


def header_colon(fn: tree_sitter.Node) -> tree_sitter.Node | None:
    for c in fn.children:
        if c.type == ":":
            return c
    return None


def outer(node: tree_sitter.Node) -> tree_sitter.Node:
    """The decorated_definition around a def/class, or the node itself."""
    p = node.parent
    return p if p is not None and p.type == "decorated_definition" else node


def walk_defs(node: tree_sitter.Node) -> Iterator[tree_sitter.Node]:
    """Every function_definition under ``node`` (itself included), in file order."""
    if node.type == "function_definition":
        yield node
    for c in node.children:
        yield from walk_defs(c)


def docstring_node(fn_or_class: tree_sitter.Node) -> tree_sitter.Node | None:
    """The expression statement holding the docstring, if the body starts with one."""
    body = fn_or_class.child_by_field_name("body")
    if body is None:
        return None
    for stmt in body.named_children:
        if stmt.type == "comment":
            continue
        if stmt.type == "expression_statement" and stmt.named_child_count == 1:
            expr = stmt.named_children[0]
            while expr.type == "parenthesized_expression" and expr.named_child_count == 1:
                expr = expr.named_children[0]
            if expr.type in ("string", "concatenated_string"):
                return stmt
        return None
    return None


def decorators_of(doc: Document, node: tree_sitter.Node) -> list[str]:
    p = node.parent
    if p is None or p.type != "decorated_definition":
        return []
    return [node_text(doc, c) for c in p.children if c.type == "decorator"]


def qualified_name(doc: Document, fn: tree_sitter.Node) -> str:
    """``f``, ``A.f``, ``outer.inner``: the defs and classes around ``fn``, outermost first."""
    parts = []
    n: tree_sitter.Node | None = fn
    while n is not None:
        if n.type in ("function_definition", "class_definition"):
            name = n.child_by_field_name("name")
            parts.append(node_text(doc, name) if name is not None else "?")
        n = n.parent
    return ".".join(reversed(parts))


def body_indent(doc: Document, fn: tree_sitter.Node) -> str:
    """Indentation of the body's statements (def indentation + 4 spaces when unknown)."""
    def_indent = indent_of(doc.line_text(fn.start_point[0]))
    colon = header_colon(fn)
    body = fn.child_by_field_name("body")
    if body is not None and colon is not None:
        for stmt in body.children:
            if stmt.start_point[0] > colon.start_point[0]:
                ind = indent_of(doc.line_text(stmt.start_point[0]))
                if indent_width(ind) > indent_width(def_indent):
                    return ind
                break
    return def_indent + ("\t" if def_indent.startswith("\t") else "    ")


# --- the function whose body holds a cursor ------------------------------------------


def _last_code_byte(doc: Document, byte: int) -> int:
    """Byte index of the last non-whitespace byte before ``byte`` (-1 if none)."""
    data = doc.source_bytes
    i = byte - 1
    while i >= 0 and data[i] in b" \t\r\n\f":
        i -= 1
    return i


def _lines_stay_inside(doc: Document, def_indent: int, first_line: int, last_line: int) -> bool:
    """Every non-blank line in [first_line, last_line) is indented deeper than the def."""
    for ln in range(first_line, last_line):
        s = doc.line_text(ln)
        if s.strip() and indent_width(indent_of(s)) <= def_indent:
            return False
    return True


def _cursor_indent(doc: Document, line: int, line_prefix: str) -> int | None:
    """Indentation the cursor's line has (or will have); None for a blank column-0 line."""
    if line_prefix.strip():
        return indent_width(indent_of(line_prefix))
    if line_prefix:
        return indent_width(line_prefix)
    full = doc.line_text(line)
    return indent_width(indent_of(full)) if full.strip() else None


def at_cursor(doc: Document, offset: int) -> tree_sitter.Node | None:
    """Innermost def whose body the cursor (string index) is in, by the tree and by
    indentation; None outside any body."""
    byte = doc.byte_at(offset)
    anchor_byte = _last_code_byte(doc, byte)
    if anchor_byte < 0:
        return None
    root = doc.tree.root_node
    node = root.descendant_for_byte_range(anchor_byte, anchor_byte + 1)
    line, _ = doc.position_at(offset)
    line_start = doc.line_start(line)
    line_prefix = doc.text[line_start:offset]
    cur_indent = _cursor_indent(doc, line, line_prefix)
    while node is not None:
        if node.type == "function_definition":
            colon = header_colon(node)
            if colon is not None and colon.end_byte <= byte:
                def_indent = indent_width(indent_of(doc.line_text(node.start_point[0])))
                inside = node.start_byte <= byte <= node.end_byte
                on_header_line = colon.end_point[0] == line
                ok = (
                    on_header_line  # right after `def f(x):`, the body comes next
                    or (cur_indent is not None and cur_indent > def_indent)
                    or (cur_indent is None and inside)
                    # Column 0 of the empty line right after a docstring-only body
                    # (no auto-indent, or the end of the file): the body comes next.
                    or (cur_indent is None and _just_after_docstring(node, line))
                )
                # Error recovery can swallow the next def into this one: check lines.
                if ok and (node.has_error or not inside):
                    ok = _lines_stay_inside(doc, def_indent, colon.end_point[0] + 1, line)
                if ok:
                    return node
        node = node.parent
    return None


def _just_after_docstring(fn: tree_sitter.Node, line: int) -> bool:
    """``line`` is the one right after the docstring that is all of ``fn``'s body."""
    ds = docstring_node(fn)
    body = fn.child_by_field_name("body")
    if ds is None or body is None or ds.end_point[0] != line - 1:
        return False
    return [c for c in body.named_children if c.type != "comment"] == [ds]


def scan_at_cursor(doc: Document, offset: int) -> tuple[int, Document] | None:
    """Line scan for a `def` above the cursor when the tree has no usable node.

    Returns the def line and a small document holding just that function (dedented),
    parsed on its own so that signature and docstring can still be read.
    """
    line, _ = doc.position_at(offset)
    line_prefix = doc.text[doc.line_start(line) : offset]
    bound = _cursor_indent(doc, line, line_prefix)
    if not bound:  # at column 0 no def can hold the cursor (and the scan would reach line 0)
        return None
    for ln in range(line - (0 if line_prefix.strip() else 1), -1, -1):
        s = doc.line_text(ln)
        if not s.strip():
            continue
        ind = indent_width(indent_of(s))
        m = _DEF_LINE.match(s)
        if m and ind < bound:
            if ln == line:
                return None  # the cursor is in the def line itself
            cut = len(m.group(1))
            lines = [doc.line_text(i) for i in range(ln, line + 1)]
            lines[-1] = lines[-1][: len(line_prefix)]
            body = "\n".join(x[cut:] if x[:cut].strip() == "" else x.lstrip() for x in lines)
            return ln, Document(body + "\n")
        if ind < bound:
            bound = ind
            if bound == 0:
                return None
    return None


# --- the functions of a file ----------------------------------------------------------


@dataclass
class FunctionInfo:
    qualname: str
    node: tree_sitter.Node
    def_line: int  # 0-based
    first_line: int  # 0-based, decorators included
    last_line: int
    empty: bool  # body is only a docstring / ... / pass / raise NotImplementedError
    src: Document | None = None  # the block's own parse when the file's tree lost it
    base: int = 0  # string index of ``src`` in the file


def in_file(doc: Document) -> list[FunctionInfo]:
    """Every def of the file (nested and methods too), in file order."""
    out = _functions_in(doc, doc.tree.root_node, None, 0, 0)
    if doc.tree.root_node.has_error:
        # Error recovery can swallow whole functions after a broken one: parse each
        # top-level block the tree lost on its own.
        known = {f.def_line for f in out}
        for base_line, chunk in _top_level_chunks(doc):
            sub = Document(chunk)
            base = doc.line_start(base_line)
            found = _functions_in(sub, sub.tree.root_node, sub, base, base_line)
            out += [f for f in found if f.def_line not in known]
        out.sort(key=lambda f: f.def_line)
    return out


def at_line(doc: Document, line: int) -> FunctionInfo | None:
    """The innermost def whose lines (decorators included) hold 0-based ``line``."""
    hits = [f for f in in_file(doc) if f.first_line <= line <= f.last_line]
    return max(hits, key=lambda f: f.first_line) if hits else None


def named(doc: Document, name: str) -> list[FunctionInfo]:
    """The defs called ``name``: a qualified name (``Class.method``, ``outer.inner``)
    exactly, else (a bare name) every def of that name."""
    fns = in_file(doc)
    hits = [f for f in fns if f.qualname == name]
    if not hits and "." not in name:
        hits = [f for f in fns if f.qualname.rsplit(".", 1)[-1] == name]
    return hits


def select(
    doc: Document, *, line: int | None = None, function: str | None = None, all: bool = False
) -> list[FunctionInfo]:
    """The functions to fill: at a 1-based line, by (qualified) name, or every empty one.
    Raises TargetError when the request names none (or, by name, several)."""
    if line is not None:
        fn = at_line(doc, line - 1)
        if fn is None:
            raise TargetError(f"no function at line {line}")
        return [fn]
    if function is not None:
        hits = named(doc, function)
        if not hits:
            raise TargetError(f"no function named {function!r}")
        if len(hits) > 1:
            names = ", ".join(f"{f.qualname} (line {f.def_line + 1})" for f in hits)
            raise TargetError(f"{function!r} is ambiguous: {names}")
        return hits
    if all:
        return [f for f in in_file(doc) if f.empty]
    raise TargetError("say which function: line, at, function or all")


def runnable_at(doc: Document, line: int) -> FunctionInfo | None:
    """The function that runs on its own around 0-based ``line`` (decorators included):
    a top-level function or a method (``Class.method``, nested classes too). Inside a
    nested function, the enclosing one: a nested def cannot be called from outside."""
    for f in in_file(doc):
        if f.first_line <= line <= f.last_line and _only_classes_above(f.node):
            return f
    return None


def _only_classes_above(fn: tree_sitter.Node) -> bool:
    n = fn.parent
    while n is not None:
        if n.type == "function_definition":
            return False
        n = n.parent
    return True


def syntax_error_line(doc: Document) -> int | None:
    """0-based line of the first syntax error tree-sitter found, or None."""
    root = doc.tree.root_node
    if not root.has_error:
        return None
    node: tree_sitter.Node | None = root
    while node is not None:
        if node.is_error or node.is_missing:
            return node.start_point[0]
        node = next((c for c in node.children if c.has_error or c.is_missing), None)
    return root.start_point[0]


def _functions_in(
    doc: Document, root: tree_sitter.Node, src: Document | None, base: int, base_line: int
) -> list[FunctionInfo]:
    out = []
    for fn in walk_defs(root):
        out.append(
            FunctionInfo(
                qualname=qualified_name(doc, fn),
                node=fn,
                def_line=fn.start_point[0] + base_line,
                first_line=outer(fn).start_point[0] + base_line,
                last_line=fn.end_point[0] + base_line,
                empty=_is_placeholder_body(doc, fn),
                src=src,
                base=base,
            )
        )
    return out


_TOP_START = re.compile(r"(?:async[ \t]+)?def\s|class\s|@")


def _top_level_chunks(doc: Document) -> list[tuple[int, str]]:
    """(first line, text) of each column-0 def/class block, decorators included."""
    bounds: list[tuple[int, bool]] = []  # column-0 code lines: (line, starts a def/class)
    after_decorator = False
    for ln in range(doc.line_count):
        s = doc.line_text(ln)
        if not s or s[0] in " \t#":
            continue
        if after_decorator:  # the def/class under decorators: same block
            after_decorator = s.startswith("@")
            continue
        bounds.append((ln, _TOP_START.match(s) is not None))
        after_decorator = s.startswith("@")
    chunks = []
    for i, (ln, is_def) in enumerate(bounds):
        if not is_def:
            continue
        end = bounds[i + 1][0] if i + 1 < len(bounds) else doc.line_count
        stop = doc.line_start(end) if end < doc.line_count else len(doc.text)
        chunks.append((ln, doc.text[doc.line_start(ln) : stop]))
    return chunks


def _placeholder(doc: Document, stmt: tree_sitter.Node) -> bool:
    if stmt.type == "pass_statement":
        return True
    text = node_text(doc, stmt).strip()
    if text == "...":
        return True
    return (
        stmt.type == "raise_statement"
        and re.fullmatch(r"raise\s+NotImplementedError(\(.*\))?", text, re.S) is not None
    )


def _body_statements(fn: tree_sitter.Node) -> list[tree_sitter.Node]:
    body = fn.child_by_field_name("body")
    return [c for c in body.named_children if c.type != "comment"] if body is not None else []


_MEANT_EMPTY = re.compile(r"@(?:\w+\.)*(?:abstractmethod|abstractproperty|overload)\b")


def _is_placeholder_body(doc: Document, fn: tree_sitter.Node) -> bool:
    """A body still to write. Abstract methods, @overload stubs and Protocol members
    are empty on purpose and are not."""
    stmts = _body_statements(fn)
    ds = docstring_node(fn)
    if ds is not None:
        stmts = stmts[1:]
    if not (all(_placeholder(doc, s) for s in stmts) and len(stmts) <= 1):
        return False
    if any(_MEANT_EMPTY.match(d) for d in decorators_of(doc, fn)):
        return False
    block = outer(fn).parent
    cls = block.parent if block is not None else None
    if cls is not None and cls.type == "class_definition":
        bases = cls.child_by_field_name("superclasses")
        if bases is not None and re.search(r"\bProtocol\b", node_text(doc, bases)):
            return False
    return True


# --- where a generated body goes (phi-lsp complete) ----------------------------------


@dataclass
class BodySlot:
    """Where a generated body goes: ``[start, end)`` of the original text is replaced."""

    start: int  # string index: end of the docstring (or of the header)
    end: int  # string index: end of the old body (placeholder or whole body)
    lead: str  # "\n" + body indentation: what precedes the generated body
    virtual: str  # the source with the old body removed and the cursor on an empty body line
    cursor: int  # string index of that cursor in ``virtual``


def body_slot(doc: Document, fn_info: FunctionInfo | tree_sitter.Node) -> BodySlot:
    """Body after the docstring is replaced (a placeholder, or the whole body for --line)."""
    if isinstance(fn_info, FunctionInfo):
        file_doc, base = doc, fn_info.base
        doc, fn = fn_info.src or doc, fn_info.node
    else:
        file_doc, base, fn = doc, 0, fn_info
    ds = docstring_node(fn)
    colon = header_colon(fn)
    start_node = ds if ds is not None else colon
    start = doc.index_at_byte(start_node.end_byte if start_node is not None else fn.end_byte)
    stmts = _body_statements(fn)
    end = doc.index_at_byte(stmts[-1].end_byte) if stmts else start
    end = max(end, start)
    # A comment after the last statement, on its line, goes with the old body.
    line_end = doc.text.find("\n", end)
    line_end = len(doc.text) if line_end < 0 else line_end
    if doc.text[end:line_end].strip().startswith("#"):
        was_empty = end == start
        end = line_end - (1 if doc.text[line_end - 1 : line_end] == "\r" else 0)
        if was_empty:
            start = end  # nothing to replace: keep the comment, insert after it
    lead = "\n" + body_indent(doc, fn)
    start, end = start + base, end + base
    virtual = file_doc.text[:start] + lead + file_doc.text[end:]
    return BodySlot(start, end, lead, virtual, start + len(lead))
