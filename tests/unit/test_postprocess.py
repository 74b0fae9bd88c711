"""Stop rules and clean-up: unit cases, and a perfect model (``replay:`` of the true
rest of standard-library files) whose completions must equal the originals."""

from __future__ import annotations

from phi_lsp.bench.pipeline import replay_agreement
from phi_lsp.context import extract
from phi_lsp.documents import Document
from phi_lsp.postprocess import Stopper, parses
from phi_lsp.prompt import split_forced


def _stopper(source_with_cursor: str) -> Stopper:
    """A Stopper for the cursor at "█" in the source."""
    i = source_with_cursor.index("█")
    text = source_with_cursor.replace("█", "")
    ctx = extract(Document(text), i)
    assert ctx is not None
    _, forced = split_forced(ctx.prefix)
    return Stopper(ctx, forced)


EMPTY = 'def add(a, b):\n    """Sum."""\n    █\n\n\ndef other():\n    pass\n'


def test_stops_at_next_def() -> None:
    s = _stopper(EMPTY)
    out = s.forced + "return a + b\n\n\ndef other():\n    pass\n"
    # Still undecided while the blank lines stream in...
    assert not s(s.forced + "return a + b\n\n")
    # ...and fires on the first character of the dedented line.
    assert s(s.forced + "return a + b\n\n\nd")
    assert s.finish(out) == "return a + b"


def test_stops_at_decorator_class_and_main_guard() -> None:
    for nxt in (
        "@decorator\ndef g(): pass",
        "class C:\n    pass",
        "if __name__ == '__main__':\n    add(1, 2)",
    ):
        s = _stopper(EMPTY)
        assert s.finish(s.forced + "x = a\n    return x + b\n" + nxt) == "x = a\n    return x + b"


def test_dedent_inside_brackets_or_strings_does_not_stop() -> None:
    s = _stopper(EMPTY)
    body = "x = [\n1,\n]\n    y = '''\ntext at column 0\n'''\n    return x, y\nz = 1\n"
    assert (
        s.finish(s.forced + body)
        == "x = [\n1,\n]\n    y = '''\ntext at column 0\n'''\n    return x, y"
    )


def test_backslash_continuation_does_not_stop() -> None:
    s = _stopper(EMPTY)
    assert (
        s.finish(s.forced + "x = a + \\\nb\n    return x\nfoo()") == "x = a + \\\nb\n    return x"
    )


def test_nested_block_dedent_to_body_level_continues() -> None:
    s = _stopper(EMPTY)
    body = "if a:\n        return b\n    return a\n"
    assert s.finish(s.forced + body) == "if a:\n        return b\n    return a"


def test_never_repeats_the_next_line_after_the_cursor() -> None:
    s = _stopper('def f(a):\n    """Doc."""\n    x = a █\n    return x\n')
    # The rest of the line is blank: multi-line mode; the model goes on to write the
    # line that already follows.
    assert s("+ 1\n    return x\n")
    assert s.finish("+ 1\n    return x\n    \n") == "+ 1"


def test_text_after_cursor_on_the_line_makes_a_single_line_suggestion_without_overlap() -> None:
    s = _stopper('def f(a):\n    """Doc."""\n    return max(█)\n')
    assert s("a, 0)\n")  # stops at the end of the line
    assert s.finish("a, 0)\n    foo()") == "a, 0"  # ")" is already after the cursor
    assert s.finish("a, 0") == "a, 0"


def test_trailing_whitespace_is_trimmed() -> None:
    s = _stopper(EMPTY)
    assert s.finish(s.forced + "return a + b   \n    \n\n") == "return a + b"


def test_truncated_generation_keeps_the_function_parseable() -> None:
    s = _stopper(EMPTY)
    # max_new_tokens cut the model mid-expression: the broken last line goes.
    text = s.finish(s.forced + "total = a + b\n    return (total +", truncated=True)
    assert text == "total = a + b"
    # Without the truncation flag, the longest parseable prefix is kept all the same.
    assert s.finish(s.forced + "total = a + b\n    return (total +") == "total = a + b"


def test_unparseable_suggestion_is_cut_back_to_a_parseable_one() -> None:
    s = _stopper(EMPTY)
    assert s.finish(s.forced + "x = 1\n    y = (x +\n") == "x = 1"
    src = EMPTY.replace("█", "x = 1")
    assert parses(src)


def test_dedented_first_line_on_blank_body_line_gives_nothing() -> None:
    # A column-0 empty line inside a body: the body's indentation still rules.
    s = _stopper('def f(a):\n    """Doc."""\n█\n    return a\n')
    assert s(s.forced + "def g")
    assert s.finish(s.forced + "def g():\n    pass") == ""
    assert s.finish(s.forced + "    a += 1\n") == "    a += 1"


def test_method_bodies_stop_at_the_next_method() -> None:
    src = 'class A:\n    def f(self):\n        """Doc."""\n        █\n\n    def g(self):\n        pass\n'
    s = _stopper(src)
    assert s.finish(s.forced + "return 1\n\n    def g(self):\n") == "return 1"


def test_replay_of_true_rest_gives_back_stdlib_functions() -> None:
    """A perfect model fed the original text after the docstring: the completed
    function equals the original (``ast.dump``) for the large majority."""
    r = replay_agreement(("textwrap", "shlex", "heapq", "statistics"))
    print(
        f"replay stdlib: {r['equal_ast']}/{r['functions']} equal ({r['share_equal']:.1%}); failures {r['failures']}"
    )
    assert r["functions"] >= 100
    assert r["share_equal"] >= 0.95


def test_suggestion_after_the_header_starts_on_a_new_line() -> None:
    s = _stopper("def f(x):█\n\n\ndef g():\n    pass\n")
    assert s.forced == ""
    assert s.finish("\n    return x * 2\n\n\ndef g():") == "\n    return x * 2"


def test_truncated_generations_always_leave_the_file_parseable(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The model stops after a few tokens, mid-statement: what is inserted still parses."""
    import ast
    import importlib
    from pathlib import Path

    from model_runtime.backends.replay import ReplayEngine
    from phi_lsp.api import apply
    from phi_lsp.completion import Completer
    from phi_lsp.functions import body_slot
    from phi_lsp.functions import in_file as functions
    from phi_lsp.settings import Settings

    source = Path(importlib.import_module("textwrap").__file__).read_text()  # type: ignore[arg-type]
    doc = Document(source)
    rest = tmp_path / "rest.txt"
    checked = 0
    for n_tokens in (3, 7, 12, 25):
        for fn in functions(doc):
            slot = body_slot(doc, fn)
            rest.write_text(source[slot.start :].lstrip())
            rec = Completer(ReplayEngine(rest), Settings(max_new_tokens=n_tokens)).fill(doc, fn)
            new = apply(doc, [rec]) if rec is not None else source
            ast.parse(new)  # never a broken file
            checked += rec is not None
    assert checked > 40


def test_a_perfect_model_never_repeats_code_that_is_already_there(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Cursor anywhere in a finished body, the model "suggests" exactly the text that
    follows: the suggestion must be empty, never a duplicate of the suffix."""
    import importlib
    import random
    from pathlib import Path

    from model_runtime.backends.replay import ReplayEngine
    from phi_lsp.completion import Completer

    source = Path(importlib.import_module("shlex").__file__).read_text()  # type: ignore[arg-type]
    doc = Document(source)
    rest = tmp_path / "rest.txt"
    rng = random.Random(5)
    asked = 0
    for _ in range(150):
        line = rng.randrange(doc.line_count)
        text = doc.line_text(line)
        col = rng.choice([len(text), rng.randrange(len(text) + 1)])
        offset = doc.offset_at(line, col)
        if extract(doc, offset) is None:
            continue
        rest.write_text(source[offset:])
        c = Completer(ReplayEngine(rest)).complete(doc, line, col)
        asked += 1
        assert c is None or not c.text.strip(), (line, col, c.text)
    assert asked > 50
