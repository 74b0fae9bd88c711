"""The function finder: which function is at a line, by name, runnable on its own."""

from __future__ import annotations

import pytest

from phi_lsp import functions
from phi_lsp.documents import Document

SRC = (
    "class A:\n"  # 0
    "    def m(self):\n"  # 1
    "        def inner():\n"  # 2
    "            return 1\n"  # 3
    "        return inner()\n"  # 4
    "\n"  # 5
    "@dec\n"  # 6
    "def g():\n"  # 7
    '    """Doc."""\n'  # 8
    "\n"  # 9
    "class B:\n"  # 10
    "    class C:\n"  # 11
    "        async def m(self):\n"  # 12
    "            ...\n"  # 13
)


def test_at_line_is_the_innermost_def_decorators_included() -> None:
    doc = Document(SRC)
    assert functions.at_line(doc, 3).qualname == "A.m.inner"
    assert functions.at_line(doc, 4).qualname == "A.m"
    assert functions.at_line(doc, 6).qualname == "g"  # the decorator line
    assert functions.at_line(doc, 5) is None
    assert functions.at_line(doc, 99) is None


def test_runnable_at_is_the_top_level_function_or_method() -> None:
    doc = Document(SRC)
    inner = functions.runnable_at(doc, 3)
    assert (inner.qualname, inner.def_line) == ("A.m", 1)  # not the nested def
    assert functions.runnable_at(doc, 6).qualname == "g"
    assert functions.runnable_at(doc, 13).qualname == "B.C.m"
    assert functions.runnable_at(doc, 5) is None
    assert functions.runnable_at(doc, 10) is None  # a class line, no method


def test_named_takes_qualified_or_bare_names() -> None:
    doc = Document(SRC)
    assert [f.qualname for f in functions.named(doc, "A.m")] == ["A.m"]
    assert [f.qualname for f in functions.named(doc, "m")] == ["A.m", "B.C.m"]
    assert functions.named(doc, "C.m") == []  # a qualified name must be whole
    assert functions.named(doc, "nope") == []


def test_select_says_what_is_wrong() -> None:
    doc = Document(SRC)
    assert [f.qualname for f in functions.select(doc, all=True)] == ["g", "B.C.m"]
    assert [f.qualname for f in functions.select(doc, line=4)] == ["A.m.inner"]
    with pytest.raises(functions.TargetError, match="no function at line 6"):
        functions.select(doc, line=6)
    with pytest.raises(functions.TargetError, match="ambiguous: A.m \\(line 2\\), B.C.m"):
        functions.select(doc, function="m")
    with pytest.raises(functions.TargetError, match="no function named 'x'"):
        functions.select(doc, function="x")
    with pytest.raises(functions.TargetError, match="say which"):
        functions.select(doc)


def test_at_cursor_needs_the_cursor_in_the_body() -> None:
    src = "def f(x):\n    y = 1\n    \n\nz = 2\n"
    doc = Document(src)
    in_body = doc.offset_at(2, 4)
    assert functions.qualified_name(doc, functions.at_cursor(doc, in_body)) == "f"
    assert functions.at_cursor(doc, doc.offset_at(0, 2)) is None  # in the def line
    assert functions.at_cursor(doc, doc.offset_at(4, 1)) is None  # module level


def test_syntax_error_line_points_at_the_broken_line() -> None:
    assert functions.syntax_error_line(Document(SRC)) is None
    assert functions.syntax_error_line(Document("x = 1\n\ndef broken(:\n    pass\n")) == 2


def test_functions_of_a_broken_file_after_the_break_are_found() -> None:
    doc = Document("def a(:\n    pass\n\ndef b():\n    ...\n")
    assert "b" in [f.qualname for f in functions.in_file(doc)]
