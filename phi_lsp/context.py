"""What the model needs to know at a cursor, read from the tree-sitter tree.

``extract(doc, offset)`` finds the function whose body holds the cursor (async,
decorated, nested and methods too) and returns its signature, docstring, class,
the module's imports, the text before and after the cursor and the body's
indentation. Files that do not parse (the user is mid-edit) go through
tree-sitter's error recovery, with a line-based fallback; nothing here raises on
bad source.

Which function holds the cursor is ``phi_lsp.functions``'s answer; this module reads
what the prompt needs from it.
"""

from __future__ import annotations

import ast
import keyword
import re
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import lru_cache

import tree_sitter

from phi_lsp import functions
from phi_lsp.documents import Document, indent_of, new_parser
from phi_lsp.functions import (
    body_indent,
    decorators_of,
    docstring_node,
    qualified_name,
    walk_defs,
)
from phi_lsp.functions import header_colon as _header_colon
from phi_lsp.functions import node_text as _text
from phi_lsp.functions import outer as _outer

_IMPORT_TYPES = ("import_statement", "import_from_statement", "future_import_statement")


class Definition:
    """A module-level definition the prompt may show (a helper the function uses).

    ``text`` (full source) and ``summary`` (signature + docstring; for classes the
    header, docstring and member signatures) may be given as callables: they are
    computed only for the few definitions a prompt shows, not for every keystroke.
    """

    def __init__(
        self,
        name: str,
        kind: str,  # "function" | "class" | "assignment"
        text: str | Callable[[], str],
        summary: str | Callable[[], str],
        start_line: int,
    ) -> None:
        self.name, self.kind, self.start_line = name, kind, start_line
        self._text, self._summary = text, summary

    @property
    def text(self) -> str:
        if callable(self._text):
            self._text = self._text()
        return self._text

    @property
    def summary(self) -> str:
        if callable(self._summary):
            self._summary = self._summary()
        return self._summary

    def __repr__(self) -> str:
        return f"Definition({self.name!r}, {self.kind!r}, line {self.start_line})"


@dataclass
class Context:
    function: str  # qualified name: "f", "A.f", "outer.inner"
    name: str
    def_line: int  # 0-based line of the `def` keyword
    signature: str  # "def f(x: int = 1) -> str:" as written (multi-line kept)
    decorators: list[str]
    is_async: bool
    docstring: str | None  # the string's value (not cleaned), None when absent
    class_header: str  # "class A(B):" of the enclosing class, with its decorators, or ""
    class_docstring: str  # source of the class docstring statement (indented), or ""
    class_members: list[str]  # other method signatures and class attributes (indented)
    imports: list[str]
    prefix: str  # source from the start of the outermost enclosing def up to the cursor
    suffix: str  # everything after the cursor
    indent: str  # indentation of the body
    def_indent: str
    cursor: int  # string index of the cursor in the document
    line_prefix: str  # text of the cursor's line before the cursor
    rest_of_line: str  # text of the cursor's line after the cursor
    referenced: set[str] = field(default_factory=set)  # identifiers in signature/docstring/body
    definitions: list[Definition] = field(default_factory=list)
    class_name: str = ""


def string_value(source: str) -> str | None:
    """Value of a string literal as Python reads it; None for bytes, f-strings, garbage."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # invalid escapes in user docstrings
            value = ast.literal_eval(source.strip())
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
    return value if isinstance(value, str) else None


def signature_of(doc: Document, fn: tree_sitter.Node) -> str:
    colon = _header_colon(fn)
    end = colon.end_byte if colon is not None else fn.end_byte
    return doc.source_bytes[fn.start_byte : end].decode("utf-8", errors="replace")


# --- module-level facts ---------------------------------------------------------------
#
# A 5 MB file has ~140k top-level statements: walking them from Python on every request
# took seconds. Instead a regex (C speed) finds the column-0 lines that may start what
# is wanted, and the tree confirms each (a `def` line inside a string is not a def).
# Results are plain strings, memoised in ``doc.shared``, which snapshots of the same
# text share: a second request on an unchanged file pays nothing.

# A line break, then what may start the statement; the first line is tried alone.
# A literal "\n" first keeps the regex engine on its fast scan for that character
# ("^" with re.M tries every position: 2-3 times slower); files with lone "\r" line
# ends take the slower character class.
_IMPORT_START = r"(?=[if])(?:import|from)\b"


@lru_cache(maxsize=64)
def _line_pattern(lone_cr: bool, start: str) -> re.Pattern[str]:
    return re.compile(("[\n\r]" if lone_cr else "\n") + start)


def _names_start(names: tuple[str, ...]) -> str:
    alt = "|".join(re.escape(n) for n in names)
    return rf"(?=[A-Za-z_])(?:(?:async[ \t]+)?def[ \t]+|class[ \t]+)?(?:{alt})\b"


def _lines_matching(doc: Document, start: str) -> list[int]:
    """String index of each line start where the regex ``start`` matches, in file order."""
    pattern = _line_pattern(doc.may_have_lone_cr, start)
    out = [0] if pattern.match("\n" + doc.line_text(0)) else []
    out += [m.start() + 1 for m in pattern.finditer(doc.text)]
    return out


def _top_level_at(doc: Document, offset: int) -> tree_sitter.Node | None:
    """The module-level statement that starts on the line of ``offset`` (column 0)."""
    root = doc.tree.root_node
    point = doc.point_at(offset)
    node = root.descendant_for_point_range(point, point)
    while node is not None and node.parent is not None and node.parent != root:
        node = node.parent
    if node is None or node == root:
        return None
    # A decorated def starts at its first decorator; the regex found its `def` line.
    inner = node.child_by_field_name("definition") if node.type == "decorated_definition" else None
    rows = {node.start_point[0], inner.start_point[0] if inner is not None else -1}
    return node if point[0] in rows else None


def imports(doc: Document) -> list[str]:
    """Source of each module-level import statement, in file order."""
    memo = doc.shared.get("imports")
    if memo is None:
        memo = []
        for start in _lines_matching(doc, _IMPORT_START):
            node = _top_level_at(doc, start)
            if node is not None and node.type in _IMPORT_TYPES:
                memo.append(_text(doc, node))
        doc.shared["imports"] = memo
    return memo


def module_definitions(doc: Document, names: Iterable[str] | None = None) -> list[Definition]:
    """Module-level functions, classes and short assignments, in file order.

    With ``names``, only the definitions of those names (what a prompt can use; their
    text and summary are computed at once and shared with snapshots). Without, every
    definition, with text and summary computed on demand (one walk of the module)."""
    if names is not None:
        return _named_definitions(doc, names)
    memo = doc.cache.get("definitions")
    if memo is not None:
        return memo
    out: list[Definition] = []
    for c in doc.tree.root_node.children:
        d = _definition(doc, c, lazy=True)
        if d is not None:
            out.append(d)
    doc.cache["definitions"] = out
    return out


def _named_definitions(doc: Document, names: Iterable[str]) -> list[Definition]:
    wanted = sorted({n for n in names if _IDENT.fullmatch(n) and not keyword.iskeyword(n)})
    missing = [n for n in wanted if ("def", n) not in doc.shared]
    if missing:
        found: dict[str, list[Definition]] = {n: [] for n in missing}
        seen: set[int] = set()
        for start in _lines_matching(doc, _names_start(tuple(missing))):
            node = _top_level_at(doc, start)
            if node is None or node.start_byte in seen:
                continue
            seen.add(node.start_byte)
            d = _definition(doc, node, lazy=False)
            if d is not None and d.name in found:
                found[d.name].append(d)
        for n, defs in found.items():
            doc.shared[("def", n)] = defs
    out = [d for n in wanted for d in doc.shared[("def", n)]]
    out.sort(key=lambda d: d.start_line)
    return out


def _definition(doc: Document, c: tree_sitter.Node, *, lazy: bool) -> Definition | None:
    """The Definition a module-level statement makes, if any."""
    node = c.child_by_field_name("definition") if c.type == "decorated_definition" else c
    if node is None:
        return None
    if node.type in ("function_definition", "class_definition"):
        name_node = node.child_by_field_name("name")
        if name_node is None:
            return None
        kind = "function" if node.type == "function_definition" else "class"
        if lazy:
            return Definition(
                name=_text(doc, name_node),
                kind=kind,
                text=lambda: _text(doc, c),
                summary=lambda: _summary(doc, node),
                start_line=c.start_point[0],
            )
        return Definition(
            _text(doc, name_node), kind, _text(doc, c), _summary(doc, node), c.start_point[0]
        )
    if node.type == "expression_statement" and node.named_child_count == 1:
        a = node.named_children[0]
        target = a.child_by_field_name("left") if a.type == "assignment" else None
        if (
            target is not None
            and target.type == "identifier"
            and node.end_point[0] - node.start_point[0] < 5
        ):
            text = _text(doc, node)  # short: at most a few lines
            return Definition(_text(doc, target), "assignment", text, text, c.start_point[0])
    return None


def _summary(doc: Document, node: tree_sitter.Node) -> str:
    """Signature (+ decorators) and docstring of a def; header, docstring and members of a class."""
    outer = _outer(node)
    head = "".join(d + "\n" for d in decorators_of(doc, node))
    if node.type == "function_definition":
        ds = docstring_node(node)
        sig = head + signature_of(doc, node)
        ind = body_indent(doc, node)
        if ds is not None:
            return f"{sig}\n{ind}{_text(doc, ds)}\n{ind}..."
        return f"{sig}\n{ind}..."
    del outer
    members = class_members(doc, node, skip=None)
    colon = _header_colon(node)
    header = head + (
        doc.source_bytes[node.start_byte : colon.end_byte].decode("utf-8", "replace")
        if colon is not None
        else _text(doc, node)
    )
    ind = body_indent(doc, node)
    ds = docstring_node(node)
    lines = [header]
    if ds is not None:
        lines.append(ind + _text(doc, ds))
    lines += members
    if len(lines) == 1:
        lines.append(ind + "...")
    return "\n".join(lines)


def class_members(doc: Document, cls: tree_sitter.Node, skip: tree_sitter.Node | None) -> list[str]:
    """Signatures of a class's methods (bodies as ``...``) and its attribute lines."""
    body = cls.child_by_field_name("body")
    if body is None:
        return []
    out: list[str] = []
    for c in body.named_children:
        node = c.child_by_field_name("definition") if c.type == "decorated_definition" else c
        if node is None or node == skip or c == skip:
            continue
        ind = indent_of(doc.line_text(c.start_point[0]))
        if node.type == "function_definition":
            head = "".join(ind + d + "\n" for d in decorators_of(doc, node))
            out.append(head + ind + signature_of(doc, node) + " ...")
        elif node.type == "expression_statement" and node.named_child_count == 1:
            a = node.named_children[0]
            if a.type == "assignment" and node.end_point[0] == node.start_point[0]:
                out.append(ind + _text(doc, node))
    return out


# --- the context --------------------------------------------------------------------


_IDENT = re.compile(r"[A-Za-z_]\w*")


def extract(doc: Document, offset: int) -> Context | None:
    """The context at string index ``offset``, or None when the cursor is not in a body."""
    fn = functions.at_cursor(doc, offset)
    if fn is not None:
        return _from_node(doc, doc, fn, offset, shift_line=0)
    fb = functions.scan_at_cursor(doc, offset)
    if fb is None:
        return None
    def_line, small = fb
    small_fn = next((c for c in walk_defs(small.tree.root_node)), None)
    if small_fn is None:
        return None
    return _from_node(doc, small, small_fn, offset, shift_line=def_line)


def _from_node(
    doc: Document, src: Document, fn: tree_sitter.Node, offset: int, shift_line: int
) -> Context:
    """Build the context; ``src`` is the document ``fn`` lives in (``doc`` or a fallback parse)."""
    line, _ = doc.position_at(offset)
    line_start = doc.line_start(line)
    line_end = line_start + len(doc.line_text(line))
    name_node = fn.child_by_field_name("name")
    name = _text(src, name_node) if name_node is not None else "?"
    ds = docstring_node(fn)
    def_line = fn.start_point[0] + shift_line
    def_indent = indent_of(doc.line_text(def_line))
    # The prompt shows the outermost enclosing def in full (the body so far of outer
    # functions matters to a nested one).
    top = fn
    cls: tree_sitter.Node | None = None
    n = fn.parent
    while n is not None:
        if n.type == "function_definition" and cls is None:
            top = n
        elif n.type == "class_definition" and cls is None:
            cls = n
        n = n.parent
    if src is doc:
        start = doc.index_at_byte(_outer(top).start_byte)
        # Start at the beginning of the line so the prefix keeps its indentation.
        start = doc.line_start(doc.position_at(start)[0])
        qual = qualified_name(doc, fn)
        ind = body_indent(doc, fn)
    else:
        start = doc.line_start(def_line)
        while start > 0 and doc.line_text(doc.position_at(start)[0] - 1).lstrip().startswith("@"):
            start = doc.line_start(doc.position_at(start)[0] - 1)
        qual = name
        ind = def_indent + body_indent(src, fn)
    signature = signature_of(src, fn)
    docstring = string_value(_text(src, ds)) if ds is not None else None
    class_header = class_ds = ""
    members: list[str] = []
    class_name = ""
    if cls is not None:
        colon = _header_colon(cls)
        outer = _outer(cls)
        end = colon.end_byte if colon is not None else cls.end_byte
        class_header = doc.source_bytes[outer.start_byte : end].decode("utf-8", "replace")
        cds = docstring_node(cls)
        class_ds = (
            indent_of(doc.line_text(cds.start_point[0])) + _text(doc, cds)
            if cds is not None
            else ""
        )
        members = class_members(doc, cls, skip=_method_of(cls, fn))
        cn = cls.child_by_field_name("name")
        class_name = _text(doc, cn) if cn is not None else ""
    prefix = doc.text[start:offset]
    # Identifiers the function talks about: signature, docstring, complete lines so far.
    complete = prefix[: prefix.rfind("\n") + 1]
    referenced = set(_IDENT.findall(complete))
    return Context(
        function=qual,
        name=name,
        def_line=def_line,
        signature=signature,
        decorators=decorators_of(src, fn),
        is_async=any(c.type == "async" for c in fn.children),
        docstring=docstring,
        class_header=class_header,
        class_docstring=class_ds,
        class_members=members,
        imports=imports(doc),
        prefix=prefix,
        suffix=doc.text[offset:],
        indent=ind,
        def_indent=def_indent,
        cursor=offset,
        line_prefix=doc.text[line_start:offset],
        rest_of_line=doc.text[offset:line_end],
        referenced=referenced,
        definitions=module_definitions(doc, referenced),
        class_name=class_name,
    )


def _method_of(cls: tree_sitter.Node, fn: tree_sitter.Node) -> tree_sitter.Node:
    """The direct child of the class body that holds ``fn`` (fn itself, or an outer def)."""
    n = fn
    while n.parent is not None and n.parent.parent != cls:
        n = n.parent
    return n


__all__ = [
    "Context",
    "Definition",
    "extract",
    "imports",
    "module_definitions",
    "new_parser",
]
