"""Context extraction: checked against Python's own ``ast`` on standard-library code
that nobody here wrote, plus the mid-edit cases an editor produces."""

from __future__ import annotations

import ast
import importlib
import textwrap
from pathlib import Path

import pytest

from phi_lsp.context import extract
from phi_lsp.documents import Document
from phi_lsp.functions import in_file as functions

STDLIB_MODULES = [
    "textwrap",
    "shlex",
    "fractions",
    "statistics",
    "difflib",
    "argparse",
    "dataclasses",
    "calendar",
    "heapq",
    "json.decoder",
    "string",
    "inspect",
    "asyncio.locks",
    "functools",
    "pathlib",
    "configparser",
    "tarfile",
    "typing",
    "enum",
    "logging",
    "collections",
    "email.message",
]


def _ast_functions(tree: ast.Module) -> list[tuple[str, ast.AST, str | None]]:
    """(qualname, node, enclosing class name) for every def, as Python sees them."""
    out = []

    def walk(node: ast.AST, prefix: str, cls: str | None) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                q = f"{prefix}{child.name}"
                out.append((q, child, cls))
                walk(child, q + ".", cls)
            elif isinstance(child, ast.ClassDef):
                walk(child, f"{prefix}{child.name}.", child.name)
            else:
                walk(child, prefix, cls)

    walk(tree, "", None)
    return out


def _sig_dump(node: ast.AST) -> str:
    return ast.dump(ast.Module([node.args, node.returns] if node.returns else [node.args], []))


def _signature_matches(sig: str, node: ast.AST) -> bool:
    code = textwrap.dedent(sig) + "\n    pass\n"
    parsed = ast.parse(code).body[0]
    return (
        parsed.name == node.name
        and type(parsed) is type(node)
        and ast.dump(parsed.args) == ast.dump(node.args)
        and ast.dump(parsed.returns or ast.Constant(None))
        == ast.dump(node.returns or ast.Constant(None))
    )


def _stdlib_source(mod: str) -> str:
    path = Path(importlib.import_module(mod).__file__)  # type: ignore[arg-type]
    return path.read_bytes().decode("utf-8")


def test_every_stdlib_function_context_matches_ast() -> None:
    checked = 0
    mismatches: list[str] = []
    for mod in STDLIB_MODULES:
        source = _stdlib_source(mod)
        tree = ast.parse(source)
        doc = Document(source)
        ours = {f.qualname: f for f in functions(doc)}
        for qual, node, cls in _ast_functions(tree):
            # A cursor at the end of the function's last simple statement.
            last = node.body[-1]
            while isinstance(
                last,
                (
                    ast.FunctionDef,
                    ast.AsyncFunctionDef,
                    ast.ClassDef,
                    ast.If,
                    ast.For,
                    ast.While,
                    ast.With,
                    ast.Try,
                ),
            ) and getattr(last, "body", None):
                if isinstance(last, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    break
                last = last.body[-1]
            if isinstance(last, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                continue  # the cursor would be in the nested definition
            offset = doc.offset_at(last.end_lineno - 1, 10**6)
            ctx = extract(doc, offset)
            checked += 1
            where = f"{mod}:{node.lineno} {qual}"
            if ctx is None:
                mismatches.append(f"{where}: no context")
                continue
            if ctx.function != qual:
                mismatches.append(f"{where}: function {ctx.function!r}")
                continue
            if not _signature_matches(ctx.signature, node):
                mismatches.append(f"{where}: signature {ctx.signature!r}")
            if ctx.docstring != ast.get_docstring(node, clean=False):
                mismatches.append(f"{where}: docstring {ctx.docstring!r:.60}")
            if ctx.def_line != node.lineno - 1:
                mismatches.append(f"{where}: def_line {ctx.def_line}")
            if (cls or "") != ctx.class_name:
                mismatches.append(f"{where}: class {ctx.class_name!r}")
            assert qual in ours
            first = node.body[0]
            if first.lineno > node.lineno + (0 if node.decorator_list else 0) and first.col_offset:
                line = source.splitlines()[first.lineno - 1]
                if ctx.indent != line[: first.col_offset] and line[: first.col_offset].isspace():
                    mismatches.append(f"{where}: indent {ctx.indent!r}")
            decorators = [ast.get_source_segment(source, d) for d in node.decorator_list]
            if [d.lstrip("@").strip() for d in ctx.decorators] != decorators:
                mismatches.append(f"{where}: decorators {ctx.decorators}")
    print(f"context vs ast: {checked} functions, {len(mismatches)} mismatches")
    assert checked > 1000
    assert not mismatches, "\n".join(mismatches[:20])


def test_imports_are_the_modules_top_level_imports() -> None:
    source = _stdlib_source("argparse")
    tree = ast.parse(source)
    expected = [
        ast.get_source_segment(source, n)
        for n in tree.body
        if isinstance(n, (ast.Import, ast.ImportFrom))
    ]
    doc = Document(source)
    fn = next(f for f in functions(doc) if f.qualname == "ArgumentParser.parse_args")
    ctx = extract(doc, doc.offset_at(fn.last_line, 10**6))
    assert ctx is not None and ctx.imports == expected


SAMPLE = '''\
import os
from typing import Any


class Shape(Base):
    """A shape."""

    sides: int = 0

    @property
    def area(self) -> float:
        """Area."""
        return 0.0

    @staticmethod
    @cache
    async def build(
        cls,
        name: str = "x",  # the name
        *args: Any,
        **kw: Any,
    ) -> "Shape":
        r\'\'\'Build a "shape" \\d.\'\'\'
        x = 1
<BLANK8>
    def perimeter(self):
        def inner(a, b=2):
            u"inner doc"
            return a
        return inner(1)
'''.replace("<BLANK8>", " " * 8)


def _ctx_at(text: str, marker_line: int, col: int | None = None):  # type: ignore[no-untyped-def]
    doc = Document(text)
    line = doc.line_text(marker_line)
    return extract(doc, doc.offset_at(marker_line, len(line) if col is None else col))


def test_method_with_multiline_signature_decorators_and_raw_docstring() -> None:
    ctx = _ctx_at(SAMPLE, 23)  # end of "x = 1"
    assert ctx is not None
    assert ctx.function == "Shape.build" and ctx.is_async
    assert ctx.signature.startswith("async def build(\n        cls,") and ctx.signature.endswith(
        '-> "Shape":'
    )
    assert ctx.decorators == ["@staticmethod", "@cache"]
    assert ctx.docstring == 'Build a "shape" \\d.'
    assert ctx.class_header == "class Shape(Base):"
    assert ctx.class_docstring == '    """A shape."""'
    assert "    sides: int = 0" in ctx.class_members
    assert any(
        m.endswith("def area(self) -> float: ...") and "@property" in m for m in ctx.class_members
    )
    assert not any("build" in m for m in ctx.class_members)
    assert ctx.imports == ["import os", "from typing import Any"]
    assert ctx.indent == "        "
    assert ctx.prefix.startswith("    @staticmethod\n") and ctx.prefix.endswith("x = 1")


def test_blank_indented_line_after_body_belongs_to_the_function() -> None:
    ctx = _ctx_at(SAMPLE, 24)  # the "        " line after "x = 1"
    assert ctx is not None and ctx.function == "Shape.build"
    assert ctx.line_prefix == "        " and ctx.suffix.startswith("\n    def perimeter")


def test_nested_function_and_its_outer_prefix() -> None:
    ctx = _ctx_at(SAMPLE, 28)  # "return a" in inner
    assert ctx is not None and ctx.function == "Shape.perimeter.inner"
    assert ctx.docstring == "inner doc"
    assert ctx.prefix.startswith("    def perimeter(self):")  # outer function shown too
    ctx = _ctx_at(SAMPLE, 29)  # "return inner(1)" back in perimeter
    assert ctx is not None and ctx.function == "Shape.perimeter"


def test_cursor_outside_any_body_gives_none() -> None:
    assert _ctx_at(SAMPLE, 0) is None  # an import
    assert _ctx_at(SAMPLE, 7) is None  # class attribute
    assert _ctx_at(SAMPLE, 16, 20) is None  # inside the parameter list


def test_cursor_after_docstring_of_empty_function() -> None:
    text = 'def add(a, b):\n    """Sum."""\n    \n\n\ndef g():\n    pass\n'
    ctx = _ctx_at(text, 2)
    assert ctx is not None and ctx.function == "add" and ctx.docstring == "Sum."
    assert ctx.prefix == 'def add(a, b):\n    """Sum."""\n    '
    # A column-0 blank line after the function is module level.
    assert _ctx_at(text, 3) is None


@pytest.mark.parametrize(
    "text,line",
    [
        # Unclosed bracket mid-body, with another function after it.
        ('def f(x):\n    """Doc."""\n    y = foo(x,\n\ndef g():\n    pass\n', 2),
        # Unfinished `if` header.
        ('def f(x):\n    """Doc."""\n    if x\n', 2),
        # Unterminated string.
        ('def f(x):\n    """Doc."""\n    s = "abc\n    return s\n', 3),
        # Body not started yet, at end of file.
        ('import re\n\ndef f(x: int) -> int:\n    """Doc."""\n    ', 4),
        # Garbage earlier in the file.
        ('x = = =\n)))\ndef f(x):\n    """Doc."""\n    return x +\n', 4),
    ],
)
def test_broken_files_still_give_the_function(text: str, line: int) -> None:
    ctx = _ctx_at(text, line)
    assert ctx is not None, text
    assert ctx.function == "f" and ctx.docstring == "Doc."
    assert ctx.signature.startswith("def f(x")


def test_cursor_in_second_function_when_first_is_broken() -> None:
    text = 'def f(x):\n    y = foo(x,\n\ndef g(a):\n    """G."""\n    return a\n'
    ctx = _ctx_at(text, 5)
    assert ctx is not None and ctx.function == "g" and ctx.docstring == "G."


def test_never_crashes_on_arbitrary_prefixes_of_real_code() -> None:
    source = _stdlib_source("textwrap")[:6000]
    for cut in range(0, len(source), 37):
        doc = Document(source[:cut])
        extract(doc, cut)  # must not raise


def test_crlf_and_tabs() -> None:
    text = 'def f(x):\r\n\t"""Doc."""\r\n\treturn x\r\n'
    ctx = _ctx_at(text, 2)
    assert ctx is not None and ctx.indent == "\t" and ctx.docstring == "Doc."


def test_cursor_right_after_the_header_colon() -> None:
    text = "class K:\n    def f(self, x):\n\n\ndef g():\n    pass\n"
    ctx = _ctx_at(text, 1)
    assert ctx is not None and ctx.function == "K.f" and ctx.indent == "        "
    assert ctx.line_prefix == "    def f(self, x):" and ctx.docstring is None


@pytest.mark.parametrize(
    "doc",
    [
        "'single'",
        '"double"',
        "'''triple\n    single'''",
        '"""triple\n\n    double  """',
        'r"raw \\d"',
        "R'''raw\\n'''",
        'u"unicode é"',
        '"implicit" "concatenation"',
        'f"not a docstring {1}"',
        'b"bytes are not docstrings"',
        '"escapes \\t\\x41\\N{BULLET}"',
        "('parenthesized')",
    ],
)
def test_docstring_styles_match_ast(doc: str) -> None:
    text = f"def f(x):\n    {doc}\n    return x\n"
    ctx = _ctx_at(text, 2)
    node = ast.parse(text).body[0]
    assert ctx is not None
    assert ctx.docstring == ast.get_docstring(node, clean=False)


def test_functions_after_a_broken_one_are_still_found() -> None:
    text = (
        'def f(x):\n    """F."""\n\n\ndef g(y:\n    """Broken header."""\n\n\n'
        '@dec\ndef h(z):\n    """H."""\n    pass\n\n\nclass K:\n    def m(self):\n        ...\n'
    )
    doc = Document(text)
    found = {f.qualname: (f.def_line, f.empty) for f in functions(doc)}
    assert found["f"] == (0, True)
    assert found["h"] == (9, True)
    assert found["K.m"] == (15, True)
    from phi_lsp.functions import body_slot

    h = next(f for f in functions(doc) if f.qualname == "h")
    slot = body_slot(doc, h)
    assert (
        text[slot.start - 8 : slot.start] == '"""H."""'
        and text[slot.start : slot.end] == "\n    pass"
    )


def test_random_cursors_in_real_code_never_crash_and_agree_with_ast() -> None:
    import random

    source = _stdlib_source("argparse")
    doc = Document(source)
    tree = ast.parse(source)
    defs = [(n.lineno - 1, n.end_lineno - 1, n) for _, n, _ in _ast_functions(tree)]
    rng = random.Random(3)
    hits = 0
    for _ in range(400):
        offset = rng.randrange(len(source))
        ctx = extract(doc, offset)
        if ctx is None:
            continue
        hits += 1
        assert source[:offset].endswith(ctx.prefix)
        assert ctx.suffix == source[offset:]
        # The function found spans the cursor's line, as Python sees it.
        line = doc.position_at(offset)[0]
        node = next(n for a, b, n in defs if a == ctx.def_line)
        assert node.lineno - 1 <= line <= node.end_lineno - 1 + 1
    assert hits > 200


def test_bodies_meant_to_be_empty_are_not_filled() -> None:
    src = (
        "import abc\nfrom typing import Protocol, overload\n\n\n"
        "class A(abc.ABC):\n"
        "    @abc.abstractmethod\n    def f(self):\n        raise NotImplementedError\n\n"
        "    def g(self):\n        '''To write.'''\n        ...\n\n\n"
        "class P(Protocol):\n    @property\n    def h(self) -> int: ...\n\n\n"
        "@overload\ndef k(x: int) -> int: ...\n\n\n"
        "def k(x):\n    '''To write.'''\n"
    )
    empty = [(f.qualname, f.def_line) for f in functions(Document(src)) if f.empty]
    assert empty == [("A.g", 9), ("k", 23)]


def test_definitions_are_the_referenced_module_level_ones_not_lookalikes() -> None:
    src = textwrap.dedent(
        '''\
        import os
        LIMIT = 10
        NOTE = """
        def helper(x):
        import sys
        """


        @cache
        def helper(x):
            """Twice x."""
            return 2 * x


        class Box:
            size = 1

            def get(self): ...


        def unused():
            return 0


        def main(v):
            """Use helper on v, up to LIMIT, in a Box."""
            n = helper(v) + LIMIT
            b = Box()
        '''
    )
    doc = Document(src)
    line = src.count("\n") - 1
    ctx = extract(doc, doc.offset_at(line, 12))
    assert ctx is not None
    assert ctx.imports == ["import os"]  # not the "import sys" inside NOTE
    got = {(d.name, d.kind, d.start_line) for d in ctx.definitions}
    assert got == {
        ("LIMIT", "assignment", 1),
        ("helper", "function", 8),
        ("Box", "class", 14),
        ("main", "function", 24),  # its own name: the prompt leaves it out
    }
    helper = next(d for d in ctx.definitions if d.name == "helper")
    assert helper.text.startswith("@cache\ndef helper(x):") and "return 2 * x" in helper.text
    assert "def get(self): ..." in next(d for d in ctx.definitions if d.name == "Box").summary
    # A snapshot of the same text reuses what the first request found.
    snap = doc.snapshot()
    assert snap.shared is doc.shared and ("def", "helper") in snap.shared
    doc.apply_change(((1, 8), (1, 10)), "99")
    assert ("def", "helper") not in doc.shared  # an edit starts afresh
    again = extract(doc, doc.offset_at(line, 12))
    assert again is not None
    assert next(d for d in again.definitions if d.name == "LIMIT").text == "LIMIT = 99"
