"""What the model needs to know at a cursor, read from the tree-sitter tree.

``extract(doc, offset)`` finds the function whose body holds the cursor (async,
decorated, nested and methods too) and returns its signature, docstring, class,
the module's imports, the text before and after the cursor and the body's
indentation. Files that do not parse (the user is mid-edit) go through
tree-sitter's error recovery, with a line-based fallback; nothing here raises on
bad source.

Also: the functions of a file (``functions``) and the "slot" of a function body
that ``phi-lsp complete`` fills (``body_slot``).
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

from phi_lsp.documents import Document, new_parser

_DEF_LINE = re.compile(r"^([ \t]*)(?:async[ \t]+)?def[ \t]+([A-Za-z_]\w*)")
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

    @property
    def body_so_far(self) -> str:
        """Function text after the header, up to the cursor."""
        i = self.prefix.find(self.signature)
        return self.prefix[i + len(self.signature) :] if i >= 0 else self.prefix


def _text(doc: Document, node: tree_sitter.Node) -> str:
    return doc.source_bytes[node.start_byte : node.end_byte].decode("utf-8", errors="replace")


def _indent_of(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" \t"))]


def _width(ws: str) -> int:
    return len(ws.expandtabs(8))


def _header_colon(fn: tree_sitter.Node) -> tree_sitter.Node | None:
    for c in fn.children:
        if c.type == ":":
            return c
    return None


def _is_def(node: tree_sitter.Node) -> bool:
    return node.type == "function_definition"


def _outer(node: tree_sitter.Node) -> tree_sitter.Node:
    """The decorated_definition around a def/class, or the node itself."""
    p = node.parent
    return p if p is not None and p.type == "decorated_definition" else node


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


def decorators_of(doc: Document, node: tree_sitter.Node) -> list[str]:
    p = node.parent
    if p is None or p.type != "decorated_definition":
        return []
    return [_text(doc, c) for c in p.children if c.type == "decorator"]


def qualified_name(doc: Document, fn: tree_sitter.Node) -> str:
    parts = []
    n: tree_sitter.Node | None = fn
    while n is not None:
        if n.type in ("function_definition", "class_definition"):
            name = n.child_by_field_name("name")
            parts.append(_text(doc, name) if name is not None else "?")
        n = n.parent
    return ".".join(reversed(parts))


def body_indent(doc: Document, fn: tree_sitter.Node) -> str:
    """Indentation of the body's statements (def indentation + 4 spaces when unknown)."""
    def_line = doc.line_text(fn.start_point[0])
    def_indent = _indent_of(def_line)
    colon = _header_colon(fn)
    body = fn.child_by_field_name("body")
    if body is not None and colon is not None:
        for stmt in body.children:
            if stmt.start_point[0] > colon.start_point[0]:
                ind = _indent_of(doc.line_text(stmt.start_point[0]))
                if _width(ind) > _width(def_indent):
                    return ind
                break
    return def_indent + ("\t" if def_indent.startswith("\t") else "    ")


# --- which function holds the cursor ----------------------------------------------


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
        if s.strip() and _width(_indent_of(s)) <= def_indent:
            return False
    return True


def _cursor_indent(doc: Document, line: int, line_prefix: str) -> int | None:
    """Indentation the cursor's line has (or will have); None for a blank column-0 line."""
    if line_prefix.strip():
        return _width(_indent_of(line_prefix))
    if line_prefix:
        return _width(line_prefix)
    full = doc.line_text(line)
    return _width(_indent_of(full)) if full.strip() else None


def enclosing_function(doc: Document, offset: int) -> tree_sitter.Node | None:
    """Innermost def whose body the cursor is in, judged by the tree and by indentation."""
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
        if _is_def(node):
            colon = _header_colon(node)
            if colon is not None and colon.end_byte <= byte:
                def_indent = _width(_indent_of(doc.line_text(node.start_point[0])))
                inside = node.start_byte <= byte <= node.end_byte
                on_header_line = colon.end_point[0] == line
                ok = (
                    on_header_line  # right after `def f(x):`, the body comes next
                    or (cur_indent is not None and cur_indent > def_indent)
                    or (cur_indent is None and inside)
                )
                # Error recovery can swallow the next def into this one: check lines.
                if ok and (node.has_error or not inside):
                    ok = _lines_stay_inside(doc, def_indent, colon.end_point[0] + 1, line)
                if ok:
                    return node
        node = node.parent
    return None


def _fallback_function(doc: Document, offset: int) -> tuple[int, Document] | None:
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
        ind = _width(_indent_of(s))
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
        ind = _indent_of(doc.line_text(c.start_point[0]))
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
    fn = enclosing_function(doc, offset)
    if fn is not None:
        return _from_node(doc, doc, fn, offset, shift_line=0)
    fb = _fallback_function(doc, offset)
    if fb is None:
        return None
    def_line, small = fb
    small_fn = next((c for c in _walk_defs(small.tree.root_node)), None)
    if small_fn is None:
        return None
    return _from_node(doc, small, small_fn, offset, shift_line=def_line)


def _walk_defs(node: tree_sitter.Node):  # type: ignore[no-untyped-def]
    if node.type == "function_definition":
        yield node
    for c in node.children:
        yield from _walk_defs(c)


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
    def_indent = _indent_of(doc.line_text(def_line))
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
            _indent_of(doc.line_text(cds.start_point[0])) + _text(doc, cds)
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


# --- functions of a file and their body slots (phi-lsp complete) ---------------------


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


def functions(doc: Document) -> list[FunctionInfo]:
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


def _functions_in(
    doc: Document, root: tree_sitter.Node, src: Document | None, base: int, base_line: int
) -> list[FunctionInfo]:
    out = []
    for fn in _walk_defs(root):
        outer = _outer(fn)
        out.append(
            FunctionInfo(
                qualname=qualified_name(doc, fn),
                node=fn,
                def_line=fn.start_point[0] + base_line,
                first_line=outer.start_point[0] + base_line,
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
    text = _text(doc, stmt).strip()
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
    block = _outer(fn).parent
    cls = block.parent if block is not None else None
    if cls is not None and cls.type == "class_definition":
        bases = cls.child_by_field_name("superclasses")
        if bases is not None and re.search(r"\bProtocol\b", _text(doc, bases)):
            return False
    return True


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
    colon = _header_colon(fn)
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


__all__ = [
    "BodySlot",
    "Context",
    "Definition",
    "FunctionInfo",
    "body_slot",
    "enclosing_function",
    "extract",
    "functions",
    "imports",
    "module_definitions",
    "new_parser",
]
