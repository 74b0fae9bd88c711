"""Completer: the pipeline end to end with the replay model, through a real Worker
thread, the typing-along cache, cancellation, and verified candidates."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from model_runtime import Generation, GenerationRequest, Worker
from model_runtime.backends.replay import ReplayEngine, pieces
from phi_lsp.completion import Completer
from phi_lsp.documents import Document
from phi_lsp.settings import Settings

SOURCE = '''\
def add(a, b):
    """Return the sum of a and b.

    >>> add(2, 3)
    5
    """
<BLANK4>

def is_even(n):
    """True if n is even."""
    return n % 2 == 0
'''.replace("<BLANK4>", "    ")
CURSOR = (6, 4)  # the indented empty line after add's docstring
TRUE_REST = (
    'return a + b\n\n\ndef is_even(n):\n    """True if n is even."""\n    return n % 2 == 0\n'
)


class Counting:
    """A real engine, counted (how often the model was asked, what it returned)."""

    def __init__(self, engine: object) -> None:
        self.engine = engine
        self.info = engine.info  # type: ignore[attr-defined]
        self.calls: list[Generation] = []

    def count_tokens(self, text: str) -> int:
        return self.engine.count_tokens(text)  # type: ignore[attr-defined]

    def generate(self, request: GenerationRequest, should_stop=None) -> Generation:  # type: ignore[no-untyped-def]
        g = self.engine.generate(request, should_stop)  # type: ignore[attr-defined]
        self.calls.append(g)
        return g

    def close(self) -> None:
        pass


@pytest.fixture
def rest_file(tmp_path: Path) -> Path:
    p = tmp_path / "rest.txt"
    p.write_text(TRUE_REST)
    return p


def test_completes_the_body_at_the_cursor(rest_file: Path) -> None:
    engine = Counting(ReplayEngine(rest_file))
    c = Completer(engine, Settings(max_new_tokens=128)).complete(SOURCE, *CURSOR)
    assert c is not None
    assert c.text == "return a + b"
    assert c.function == "add" and c.line == 0
    assert c.range == {"start": {"line": 6, "character": 4}, "end": {"line": 6, "character": 4}}
    # The stop rule ended generation at the next def, long before the replay's end.
    g = engine.calls[0]
    assert g.finish_reason == "stop_fn"
    assert g.new_tokens < len(pieces(TRUE_REST))


def test_through_a_real_worker_thread(rest_file: Path) -> None:
    worker = Worker(lambda: ReplayEngine(rest_file))
    try:
        c = Completer(worker, Settings()).complete(SOURCE, *CURSOR, key="file:///a.py")
        assert c is not None and c.text == "return a + b"
    finally:
        worker.shutdown()


def test_document_input_is_not_reparsed(rest_file: Path) -> None:
    doc = Document(SOURCE, version=4, uri="file:///a.py")
    c = Completer(ReplayEngine(rest_file)).complete(doc, *CURSOR)
    assert c is not None and c.text == "return a + b"
    assert doc.full_parses == 1 and doc.incremental_parses == 0


def test_typing_along_the_suggestion_is_answered_from_the_cache(rest_file: Path) -> None:
    engine = Counting(ReplayEngine(rest_file))
    completer = Completer(engine, Settings())
    doc = Document(SOURCE)
    first = completer.complete(doc, *CURSOR)
    assert first is not None and first.text == "return a + b"
    # The user types "retu": the rest comes back without the model.
    doc.apply_change((CURSOR, CURSOR), "retu")
    second = completer.complete(doc, 6, 8)
    assert second is not None and second.text == "rn a + b" and second.cached
    assert len(engine.calls) == 1
    # Typing something else asks the model again.
    doc.apply_change(((6, 8), (6, 8)), "x")
    completer.complete(doc, 6, 9)
    assert len(engine.calls) == 2


def test_cursor_outside_a_function_gives_nothing(rest_file: Path) -> None:
    assert Completer(ReplayEngine(rest_file)).complete("x = 1\n", 0, 5) is None


def test_range_is_in_utf16_units(tmp_path: Path) -> None:
    p = tmp_path / "r.txt"
    p.write_text(" + 1\n")
    src = 'def f():\n    """Doc."""\n    s = "😀"\n'
    c = Completer(ReplayEngine(p)).complete(src, 2, 12)
    assert c is not None and c.text == " + 1"
    assert c.range["start"] == {"line": 2, "character": 12}


def test_cancel_event_stops_the_request(rest_file: Path) -> None:
    worker = Worker(lambda: ReplayEngine(rest_file, delay_s=0.2))
    try:
        cancel = threading.Event()
        threading.Timer(0.1, cancel.set).start()
        t = time.perf_counter()
        c = Completer(worker, Settings()).complete(SOURCE, *CURSOR, cancel=cancel)
        assert c is None
        assert time.perf_counter() - t < 1.0
    finally:
        worker.shutdown()


class BySeed:
    """Unit-test fake of one engine: a different body per sampling seed."""

    def __init__(self, bodies: dict[int | None, str]) -> None:
        from model_runtime import EngineInfo

        self.bodies = bodies
        self.info = EngineInfo(spec="by-seed", source="", backend="fake")
        self.seeds: list[int | None] = []

    def count_tokens(self, text: str) -> int:
        return len(text) // 3

    def generate(self, request: GenerationRequest, should_stop=None) -> Generation:  # type: ignore[no-untyped-def]
        self.seeds.append(request.seed)
        return Generation(request.forced_prefix + self.bodies[request.seed], "eos")

    def close(self) -> None:
        pass


def test_verification_prefers_a_passing_candidate() -> None:
    engine = BySeed({None: "return a - b", 1: "return a * b", 2: "return a + b", 3: "return 0"})
    s = Settings(verify="prefer", candidates=4)
    c = Completer(engine, s).complete(SOURCE, *CURSOR)
    assert c is not None
    assert c.text == "return a + b"
    assert c.verified is True and c.status == "passed"
    assert c.examples == {"passed": 1, "failed": 0}
    assert c.candidates_tried == 3
    assert engine.seeds == [None, 1, 2]  # greedy first, stopped at the first pass


def test_verification_require_gives_nothing_when_all_fail() -> None:
    engine = BySeed({None: "return a - b", 1: "return a * b"})
    assert (
        Completer(engine, Settings(verify="require", candidates=2)).complete(SOURCE, *CURSOR)
        is None
    )
    prefer = Completer(engine, Settings(verify="prefer", candidates=2)).complete(SOURCE, *CURSOR)
    assert prefer is not None and prefer.verified is False and prefer.status == "failed"
    assert prefer.text == "return a - b"  # greedy one when none passes
    assert prefer.candidates_tried == 2


def _busy_sandboxes() -> set[int]:
    """Processes running an example: children of ours that have children (the sandbox
    keeps an idle spare interpreter, which has none), and those children. Linux /proc."""
    import os

    parent: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            parent[int(entry.name)] = int(fields[1])
    mine = {p for p, pp in parent.items() if pp == os.getpid()}
    grandchildren = {p for p, pp in parent.items() if pp in mine}
    return grandchildren | {parent[g] for g in grandchildren}


def test_cancelling_during_verification_ends_the_sandbox_promptly(tmp_path: Path) -> None:
    if not Path("/proc/self/stat").exists():
        pytest.skip("needs Linux /proc to see the sandbox's processes")
    rest = tmp_path / "rest.txt"
    rest.write_text("while True:\n        pass\n")  # the docstring's example never returns
    settings = Settings(verify="require", candidates=1, verify_timeout_ms=30_000)
    completer = Completer(ReplayEngine(rest), settings)
    cancel = threading.Event()
    running: list[set[int]] = []

    def cancel_once_the_example_runs() -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not (busy := _busy_sandboxes()):
            time.sleep(0.02)
        time.sleep(0.3)
        running.append(busy)
        cancel.set()

    watcher = threading.Thread(target=cancel_once_the_example_runs)
    watcher.start()
    t = time.perf_counter()
    got = completer.complete(SOURCE, *CURSOR, cancel=cancel)
    elapsed = time.perf_counter() - t
    watcher.join()
    assert running and running[0], "the example never started running"
    assert got is None
    # Without the cancel event reaching the sandbox this took the 30 s timeout.
    assert elapsed < 10
    deadline = time.monotonic() + 2
    while running[0] & _busy_sandboxes() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not running[0] & _busy_sandboxes()


def test_function_without_examples_is_not_retried() -> None:
    src = 'def f(a):\n    """No examples here."""\n    \n'
    engine = BySeed({None: "return a", 1: "return 2"})
    c = Completer(engine, Settings(verify="prefer", candidates=2)).complete(src, 2, 4)
    assert c is not None and c.status == "no-examples" and c.verified is None
    assert engine.seeds == [None]


def test_python_api_returns_json_records_and_reuses_the_engine(rest_file: Path) -> None:
    import phi_lsp
    from phi_lsp import api

    spec = f"replay:{rest_file}"
    out = phi_lsp.complete_source(SOURCE, function="add", model=spec)
    assert out["model"] == spec and out["file"] is None
    (rec,) = out["completions"]
    assert rec["function"] == "add" and rec["text"] == "\n    return a + b"
    assert set(rec) >= {"function", "line", "text", "range", "latency_ms"}
    assert "    return a + b\n" in out["source"]
    first = api.get_completer(api._settings(spec, None, {}))
    phi_lsp.complete_source(SOURCE, line=2, model=spec, max_new_tokens=32)
    again = api.get_completer(api._settings(spec, None, {}))
    assert first is again  # one engine per model per process


def test_python_api_rejects_bad_targets_and_settings(rest_file: Path) -> None:
    import phi_lsp
    from phi_lsp.api import TargetError

    spec = f"replay:{rest_file}"
    with pytest.raises(TargetError, match="exactly one"):
        phi_lsp.complete_source(SOURCE, model=spec)
    with pytest.raises(TargetError, match="no function named"):
        phi_lsp.complete_source(SOURCE, function="nope", model=spec)
    with pytest.raises(ValueError, match="maxNewTokens"):
        phi_lsp.complete_source(SOURCE, all=True, model=spec, max_new_tokens=0)


def test_complete_file_reads_without_writing(rest_file: Path, tmp_path: Path) -> None:
    import phi_lsp

    f = tmp_path / "m.py"
    f.write_bytes(SOURCE.replace("\n", "\r\n").encode())
    out = phi_lsp.complete_file(f, at=(7, 5), model=f"replay:{rest_file}")
    assert out["file"] == str(f)
    assert out["completions"][0]["text"] == "return a + b"
    assert "\r\n" in out["source"]
    assert f.read_bytes() == SOURCE.replace("\n", "\r\n").encode()


def test_concurrent_requests_from_server_threads(rest_file: Path) -> None:
    """The server calls complete() from several threads at once; one Worker serves them."""
    from concurrent.futures import ThreadPoolExecutor

    worker = Worker(lambda: ReplayEngine(rest_file))
    completer = Completer(worker, Settings())
    try:
        sources = [SOURCE.replace("add", f"add{i}") for i in range(12)]
        with ThreadPoolExecutor(6) as pool:
            results = list(pool.map(lambda s: completer.complete(s, *CURSOR), sources))
        assert [r.function for r in results] == [f"add{i}" for i in range(12)]  # type: ignore[union-attr]
        assert all(r.text == "return a + b" for r in results)  # type: ignore[union-attr]
    finally:
        worker.shutdown()


def test_pipeline_bench_reports_overhead_and_incremental_parsing(rest_file: Path) -> None:
    import argparse
    import json

    from phi_lsp.bench import pipeline

    args = argparse.Namespace(
        model=f"replay:{rest_file}", new_tokens=16, runs=1, device="cpu", no_replay=True
    )
    out = pipeline.run(args)
    json.dumps(out)  # one JSON object
    assert out["file_lines"] >= 4999
    assert set(out["stages_ms"]) == {"reparse", "context", "prompt", "postprocess"}
    # A keystroke reparses incrementally: a small fraction of a full parse.
    assert out["incremental_vs_full_parse"] < 0.5


def test_never_raises_on_mangled_source(tmp_path: Path) -> None:
    """Half-typed, mangled files: an answer or None, never an exception."""
    import random

    p = tmp_path / "r.txt"
    p.write_text("x = (1,\n    2)\n    return x\n\ndef z():\n")
    completer = Completer(ReplayEngine(p))
    tokens = [
        "def ",
        "f",
        "(",
        ")",
        ":",
        "\n",
        "    ",
        '"""',
        "'",
        "\\",
        "#",
        "😀",
        "\r\n",
        "\t",
        "return",
        " x",
        "@",
        "class ",
    ]
    rng = random.Random(11)
    answered = 0
    for _ in range(300):
        noise = "".join(rng.choice(tokens) for _ in range(rng.randrange(1, 40)))
        src = rng.choice(["", "import os\n", "class A:\n  "]) + "def f(a):\n    " + noise
        src += rng.choice(["", "\n\ndef g():\n    pass\n"])
        doc = Document(src)
        line = rng.randrange(doc.line_count + 1)
        answered += completer.complete(src, line, rng.randrange(-2, 30)) is not None
    assert answered > 10  # some cursors were in a function, and went through the model
