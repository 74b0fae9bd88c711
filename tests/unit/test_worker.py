"""The Worker: one thread owns the model; futures, superseding, cancellation, errors."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import CancelledError
from pathlib import Path

import pytest
import torch

from model_runtime.backends.replay import ReplayEngine
from model_runtime.types import (
    EngineInfo,
    Generation,
    GenerationError,
    GenerationRequest,
    ModelLoadError,
)
from model_runtime.worker import Worker


class SlowEngine:
    """A fake engine for this unit: one "token" per ``step_s``, polling ``should_stop``."""

    def __init__(self, step_s: float = 0.01, fail_on: str = "", oom_on: str = "") -> None:
        self.info = EngineInfo(spec="slow", source="test", backend="fake")
        self.step_s = step_s
        self.fail_on = fail_on
        self.oom_on = oom_on
        self.started: list[str] = []
        self.tokens: dict[str, int] = {}
        self.thread: threading.Thread | None = None
        self.closed = False
        self.cache_resets = 0
        self.running = threading.Event()

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def reset_cache(self, release: bool = False) -> None:
        self.cache_resets += int(release)

    def generate(
        self, request: GenerationRequest, should_stop: Callable[[], bool] | None = None
    ) -> Generation:
        self.thread = threading.current_thread()
        self.started.append(request.prompt)
        self.running.set()
        try:
            if request.prompt == self.fail_on:
                raise ValueError("weights on fire")
            if request.prompt == self.oom_on:
                raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")
            n = 0
            while n < request.max_new_tokens:
                if should_stop is not None and should_stop():
                    self.tokens[request.prompt] = n
                    return Generation(text="x" * n, finish_reason="cancelled", new_tokens=n)
                time.sleep(self.step_s)
                n += 1
            self.tokens[request.prompt] = n
            return Generation(text="x" * n, finish_reason="length", new_tokens=n)
        finally:
            self.running.clear()

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def engine() -> SlowEngine:
    return SlowEngine()


@pytest.fixture
def worker(engine: SlowEngine):  # type: ignore[no-untyped-def]
    w = Worker(lambda: engine)
    yield w
    w.shutdown()


def test_result_comes_back_and_the_model_runs_on_the_worker_thread(
    worker: Worker, engine: SlowEngine
) -> None:
    assert worker.ready().result(5).spec == "slow"
    g = worker.submit(GenerationRequest(prompt="a", max_new_tokens=3)).result(5)
    assert (g.text, g.finish_reason) == ("xxx", "length")
    assert engine.thread is not None and engine.thread is not threading.current_thread()
    assert worker.stats["completed"] == 1


def test_newer_request_for_the_same_document_supersedes_the_running_one(
    worker: Worker, engine: SlowEngine
) -> None:
    old = worker.submit(GenerationRequest(prompt="old", max_new_tokens=500, key="doc"))
    assert engine.running.wait(5)
    t0 = time.perf_counter()
    new = worker.submit(GenerationRequest(prompt="new", max_new_tokens=2, key="doc"))
    g_old = old.result(5)
    assert g_old.finish_reason == "cancelled"
    assert time.perf_counter() - t0 < 1.0  # freed within a token or so, not after 500
    assert engine.tokens["old"] < 500
    assert new.result(5).finish_reason == "length"


def test_pending_request_superseded_never_runs(worker: Worker, engine: SlowEngine) -> None:
    busy = worker.submit(GenerationRequest(prompt="other doc", max_new_tokens=30, key="b"))
    assert engine.running.wait(5)
    first = worker.submit(GenerationRequest(prompt="first", max_new_tokens=2, key="a"))
    second = worker.submit(GenerationRequest(prompt="second", max_new_tokens=2, key="a"))
    assert first.result(5).finish_reason == "cancelled"
    assert second.result(5).finish_reason == "length"
    assert busy.result(5).finish_reason == "length"  # another document is not touched
    assert "first" not in engine.started
    assert worker.stats["superseded"] == 1


def test_requests_without_key_do_not_supersede(worker: Worker) -> None:
    futs = [worker.submit(GenerationRequest(prompt=f"p{i}", max_new_tokens=2)) for i in range(3)]
    assert [f.result(5).finish_reason for f in futs] == ["length"] * 3


def test_cancel_mid_decode_stops_within_a_token(worker: Worker, engine: SlowEngine) -> None:
    fut = worker.submit(GenerationRequest(prompt="long", max_new_tokens=1000))
    assert engine.running.wait(5)
    time.sleep(0.05)
    assert fut.cancel()  # still PENDING while running, so the caller can cancel it
    with pytest.raises(CancelledError):
        fut.result(1)
    deadline = time.monotonic() + 2
    while "long" not in engine.tokens and time.monotonic() < deadline:
        time.sleep(0.01)
    assert 0 < engine.tokens["long"] < 1000
    assert worker.submit(GenerationRequest(prompt="next", max_new_tokens=1)).result(5).text == "x"
    assert worker.stats["cancelled"] == 1


async def test_asyncio_caller_awaits_and_cancels(worker: Worker, engine: SlowEngine) -> None:
    g = await asyncio.wrap_future(worker.submit(GenerationRequest(prompt="a", max_new_tokens=2)))
    assert g.text == "xx"
    task = asyncio.ensure_future(
        asyncio.wrap_future(worker.submit(GenerationRequest(prompt="slow", max_new_tokens=1000)))
    )
    await asyncio.to_thread(engine.running.wait, 5)
    task.cancel()  # e.g. $/cancelRequest from the editor
    with pytest.raises(asyncio.CancelledError):
        await task
    g2 = await asyncio.wrap_future(worker.submit(GenerationRequest(prompt="b", max_new_tokens=1)))
    assert g2.text == "x"
    assert engine.tokens["slow"] < 1000


def test_model_exception_comes_back_on_the_future_and_worker_keeps_serving() -> None:
    eng = SlowEngine(fail_on="bad")
    w = Worker(lambda: eng)
    try:
        with pytest.raises(GenerationError, match="ValueError: weights on fire"):
            w.submit(GenerationRequest(prompt="bad")).result(5)
        assert w.submit(GenerationRequest(prompt="good", max_new_tokens=1)).result(5).text == "x"
        assert w.stats["errors"] == 1
    finally:
        w.shutdown()


def test_cuda_oom_drops_the_kv_cache_and_says_what_to_do() -> None:
    eng = SlowEngine(oom_on="huge")
    w = Worker(lambda: eng)
    try:
        with pytest.raises(GenerationError, match="ran out of memory") as info:
            w.submit(GenerationRequest(prompt="huge")).result(5)
        assert isinstance(info.value.__cause__, torch.cuda.OutOfMemoryError)
        assert eng.cache_resets == 1
        assert w.submit(GenerationRequest(prompt="ok", max_new_tokens=1)).result(5).text == "x"
    finally:
        w.shutdown()


def test_load_failure_reaches_ready_and_every_request() -> None:
    def load() -> SlowEngine:
        raise ModelLoadError("no weights for 'microsoft/phi-1' offline; try --model tiny")

    w = Worker(load)
    try:
        with pytest.raises(ModelLoadError, match="try --model tiny"):
            w.ready().result(5)
        with pytest.raises(ModelLoadError):
            w.submit(GenerationRequest(prompt="x")).result(5)
    finally:
        w.shutdown()


def test_unexpected_load_error_becomes_model_load_error() -> None:
    def load() -> SlowEngine:
        raise OSError("disk gone")

    w = Worker(load)
    try:
        with pytest.raises(ModelLoadError, match="disk gone"):
            w.ready().result(5)
    finally:
        w.shutdown()


def test_shutdown_while_busy_stops_running_cancels_pending_and_closes(engine: SlowEngine) -> None:
    w = Worker(lambda: engine)
    running = w.submit(GenerationRequest(prompt="running", max_new_tokens=10_000))
    pending = w.submit(GenerationRequest(prompt="pending", max_new_tokens=5))
    assert engine.running.wait(5)
    t0 = time.perf_counter()
    w.shutdown(wait=True)
    assert time.perf_counter() - t0 < 2.0
    assert running.result(1).finish_reason == "cancelled"
    assert pending.cancelled()
    assert engine.closed
    assert "pending" not in engine.started
    late = w.submit(GenerationRequest(prompt="late"))
    with pytest.raises(GenerationError, match="shut down"):
        late.result(1)


def test_shutdown_during_a_slow_load_is_clean() -> None:
    eng = SlowEngine()

    def load() -> SlowEngine:
        time.sleep(0.3)
        return eng

    w = Worker(load)
    fut = w.submit(GenerationRequest(prompt="queued"))
    w.shutdown(wait=True)
    assert fut.cancelled()
    assert eng.closed and eng.started == []


def test_with_the_replay_engine(tmp_path: Path) -> None:
    """The real replay backend through the worker: forced prefix then the file."""
    body = tmp_path / "rest.py"
    body.write_text("return a + b\n\ndef g():\n    pass\n")
    w = Worker(lambda: ReplayEngine(body, delay_s=0.001))
    try:
        req = GenerationRequest(prompt="def f(a, b):", forced_prefix="\n    ", stop=("\ndef",))
        g = w.submit(req).result(5)
        assert g.text == "\n    return a + b\n"
        assert g.finish_reason == "stop"
    finally:
        w.shutdown()


def test_real_engine_supersede_then_serve_from_the_cache() -> None:
    """The real model behind the worker: a superseded long request frees the thread within
    a token, and the newer request (the same prompt typed on) reuses the cached prefix.
    Random weights never end a body, so the old request runs until superseded."""
    from model_runtime import load_engine

    w = Worker(lambda: load_engine("random:phi-1?layers=1", device="cpu"))
    try:
        assert w.ready().result(300).spec == "random:phi-1?layers=1"
        prompt = 'def add(a, b):\n    """Return the sum of a and b."""'
        old = w.submit(GenerationRequest(prompt=prompt, max_new_tokens=1500, key="f.py"))
        time.sleep(1.0)  # let it prefill and decode a little
        t0 = time.perf_counter()
        new = w.submit(
            GenerationRequest(prompt=prompt + "\n    return", max_new_tokens=8, key="f.py")
        )
        g_old, g_new = old.result(60), new.result(60)
        assert g_old.finish_reason == "cancelled" and g_old.new_tokens < 1500
        assert g_new.finish_reason == "length" and g_new.new_tokens == 8
        assert g_new.reused_tokens > 0
        assert time.perf_counter() - t0 < 10
    finally:
        w.shutdown()


def test_a_fatal_error_in_the_engine_fails_every_future_instead_of_hanging() -> None:
    class Fatal(SlowEngine):
        def generate(self, request, should_stop=None):  # type: ignore[no-untyped-def]
            if request.prompt == "exit":
                raise SystemExit("backend called exit()")
            return super().generate(request, should_stop)

    eng = Fatal()
    w = Worker(lambda: eng)
    try:
        first = w.submit(GenerationRequest(prompt="slow", max_new_tokens=20))
        fatal = w.submit(GenerationRequest(prompt="exit"))
        queued = w.submit(GenerationRequest(prompt="after"))
        assert first.result(5).finish_reason == "length"
        with pytest.raises(GenerationError, match="SystemExit"):
            fatal.result(5)
        with pytest.raises(GenerationError):
            queued.result(5)
        with pytest.raises(GenerationError, match="shut down"):
            w.submit(GenerationRequest(prompt="later")).result(5)
    finally:
        w.shutdown()
    assert eng.closed


def test_worker_is_a_backend_count_tokens_answers_while_a_generation_runs() -> None:
    engine = SlowEngine(step_s=0.05)
    w = Worker(lambda: engine)
    try:
        assert w.info.spec == "slow"  # waits for the load
        running = w.submit(GenerationRequest(prompt="long", max_new_tokens=100))
        assert engine.running.wait(5)
        t0 = time.perf_counter()
        assert w.count_tokens("def f ( x ) :") == 6
        assert time.perf_counter() - t0 < 0.5  # not queued behind the 5 s generation
        assert not running.done()
        running.cancel()
    finally:
        w.shutdown()


def test_worker_generate_blocks_and_should_stop_cancels() -> None:
    w = Worker(lambda: SlowEngine(step_s=0.01))
    try:
        gen = w.generate(GenerationRequest(prompt="p", max_new_tokens=3))
        assert (gen.text, gen.finish_reason) == ("xxx", "length")
        t0 = time.perf_counter()
        stop_at = t0 + 0.1
        gen = w.generate(
            GenerationRequest(prompt="q", max_new_tokens=10_000),
            should_stop=lambda: time.perf_counter() > stop_at,
        )
        assert gen.finish_reason == "cancelled"
        assert time.perf_counter() - t0 < 2
    finally:
        w.close()
    with pytest.raises(GenerationError, match="shut down"):
        w.count_tokens("x")


def test_worker_info_and_count_raise_the_load_error() -> None:
    def load() -> SlowEngine:
        raise ModelLoadError("no such model")

    w = Worker(load)
    with pytest.raises(ModelLoadError, match="no such model"):
        _ = w.info
    with pytest.raises(ModelLoadError, match="no such model"):
        w.count_tokens("x")
    w.shutdown()
