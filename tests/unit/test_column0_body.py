"""A body suggestion at column 0 of the empty line right after a docstring (an editor
without auto-indent, or the end of the file), and nowhere else at column 0."""

from __future__ import annotations

from pathlib import Path

import pytest

from phi_lsp import functions
from phi_lsp.api import complete_source
from phi_lsp.documents import Document

ADD = 'def add(a, b):\n    """Return the sum of a and b.\n\n    >>> add(2, 3)\n    5\n    """\n'
AFTER_DOCSTRING = 7  # 1-based line right after the closing quotes


def _fn_at(src: str, line: int, col: int = 0) -> str | None:
    doc = Document(src)
    node = functions.at_cursor(doc, doc.line_start(line) + col)
    if node is None:
        return None
    name = node.child_by_field_name("name")
    return doc.source_bytes[name.start_byte : name.end_byte].decode() if name else "?"


@pytest.mark.parametrize(
    "src",
    [
        ADD,  # the end of the file
        ADD + "\n\ndef g():\n    pass\n",  # the next function below
        "import os\n\n\n" + ADD.replace("def add", "async def add"),
        "class C:\n" + "".join("    " + ln + "\n" for ln in ADD.splitlines()),
    ],
    ids=["end-of-file", "next-def", "async", "method"],
)
def test_column_0_after_a_docstring_only_body_is_in_the_body(src: str) -> None:
    line = next(i for i, ln in enumerate(src.split("\n")) if ln.strip() == '"""') + 1
    assert _fn_at(src, line) == "add"


@pytest.mark.parametrize(
    ("src", "line"),
    [
        (ADD + "\n", 7),  # two lines below the docstring: the function is over
        ('"""A module docstring."""\n', 1),  # not a function's
        ('class C:\n    """Doc."""\n', 2),  # a class's docstring
        ('def f():\n    """Doc."""\n    return 1\n', 3),  # the body is written already
    ],
    ids=["two-lines-below", "module", "class", "body-written"],
)
def test_column_0_elsewhere_is_not_a_body(src: str, line: int) -> None:
    assert _fn_at(src, line) is None


@pytest.mark.parametrize("tail", ["", "\n\ndef g():\n    pass\n"], ids=["eof", "next-def"])
def test_the_suggestion_at_column_0_brings_its_indentation(tmp_path: Path, tail: str) -> None:
    # replay: a perfect model, fed the true rest of the file.
    body = tmp_path / "body.txt"
    body.write_text("    return a + b\n")
    src = ADD + tail
    out = complete_source(src, at=(AFTER_DOCSTRING, 1), model=f"replay:{body}")
    (c,) = out["completions"]
    assert c["text"] == "    return a + b"
    assert c["range"]["start"] == {"line": AFTER_DOCSTRING - 1, "character": 0}
    assert out["source"].startswith(ADD + "    return a + b")
    compile(out["source"], "m.py", "exec")
