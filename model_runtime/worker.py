"""One background thread owns the model; callers get futures.

Like a llama.cpp server slot: requests run one at a time, a newer request for the
same document (``request.key``) supersedes the older one, and cancellation is
checked between two tokens, so the device is free again within one token. Errors
come back on the request's future; the thread keeps serving.

A Worker is itself a ``Backend``: ``generate`` blocks on a submitted request (polling
``should_stop``), ``info`` waits for the load, ``count_tokens`` asks the loaded engine
from the caller's thread (tokenizers are safe to share; queueing the count behind the
running generation would make every keystroke wait for the stale one).
"""

from __future__ import annotations

import concurrent.futures
import logging
import sys
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field

from model_runtime.types import (
    Backend,
    EngineInfo,
    Generation,
    GenerationError,
    GenerationRequest,
    ModelLoadError,
)

log = logging.getLogger(__name__)


@dataclass(eq=False)
class _Job:
    request: GenerationRequest
    future: Future[Generation] = field(default_factory=Future)
    superseded: bool = False


def _cancelled() -> Generation:
    return Generation(text="", finish_reason="cancelled")


def _settle(fut: Future, *, result: object = None, error: BaseException | None = None) -> None:
    """Resolve ``fut`` unless the caller already cancelled it (that is not an error)."""
    try:
        if error is not None:
            fut.set_exception(error)
        else:
            fut.set_result(result)
    except InvalidStateError:
        pass


class Worker:
    """``Worker(load)``: ``load()`` runs on the worker thread and returns the Backend it serves."""

    def __init__(self, load: Callable[[], Backend], *, name: str = "phi-lsp-model") -> None:
        self._load = load
        self._cond = threading.Condition()
        self._queue: deque[_Job] = deque()
        self._running: _Job | None = None
        self._closing = False
        self._ready: Future[EngineInfo] = Future()
        self._load_error: BaseException | None = None
        self._engine: Backend | None = None  # set once loaded, for count_tokens
        self.stats: dict[str, int] = {
            "requests": 0,
            "completed": 0,
            "cancelled": 0,
            "superseded": 0,
            "errors": 0,
        }
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()

    # -- public --

    def ready(self) -> Future[EngineInfo]:
        """Resolves with the engine's info once loaded, or with the ModelLoadError."""
        return self._ready

    @property
    def busy(self) -> bool:
        with self._cond:
            return self._running is not None or bool(self._queue)

    def submit(self, request: GenerationRequest) -> Future[Generation]:
        """Queue a request. The future stays PENDING while it runs, so ``cancel()`` works
        until the result is set and stops the generation at the next token."""
        job = _Job(request)
        with self._cond:
            if self._closing:
                job.future.set_exception(GenerationError("the model worker is shut down"))
                return job.future
            if self._load_error is not None:
                job.future.set_exception(self._load_error)
                return job.future
            self.stats["requests"] += 1
            if request.key:
                self._supersede(request.key)
            self._queue.append(job)
            self._cond.notify_all()
        return job.future

    # -- the Backend protocol --

    @property
    def info(self) -> EngineInfo:
        """The engine's info; waits for the load (raises its ModelLoadError)."""
        return self._ready.result()

    def count_tokens(self, text: str) -> int:
        """The loaded engine's count, on the caller's thread; waits for the load."""
        self._ready.result()
        engine = self._engine
        if engine is None or self._closing:
            raise GenerationError("the model worker is shut down")
        return engine.count_tokens(text)

    def generate(
        self, request: GenerationRequest, should_stop: Callable[[], bool] | None = None
    ) -> Generation:
        """``submit`` and wait; ``should_stop()`` becoming true cancels the request."""
        fut = self.submit(request)
        while True:
            try:
                return fut.result(timeout=0.02)
            except concurrent.futures.TimeoutError:
                if should_stop is not None and should_stop():
                    fut.cancel()
                    return _cancelled()
            except concurrent.futures.CancelledError:
                return _cancelled()

    def close(self) -> None:
        self.shutdown(wait=True)

    def shutdown(self, wait: bool = True, timeout: float | None = None) -> None:
        """Cancel what is queued, stop the running request within a token, close the engine."""
        with self._cond:
            self._closing = True
            pending = list(self._queue)
            self._queue.clear()
            self._cond.notify_all()
        for job in pending:
            job.future.cancel()
        if wait and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    # -- worker thread --

    def _supersede(self, key: str) -> None:
        """Called with the lock held: older jobs with this key end as "cancelled"."""
        for job in [j for j in self._queue if j.request.key == key]:
            self._queue.remove(job)
            self.stats["superseded"] += 1
            _settle(job.future, result=_cancelled())
        if self._running is not None and self._running.request.key == key:
            self._running.superseded = True  # polled between tokens

    def _main(self) -> None:
        try:
            engine = self._load()
        except BaseException as e:  # noqa: BLE001 - every load failure must reach the caller
            err = (
                e
                if isinstance(e, ModelLoadError)
                else ModelLoadError(f"loading the model failed: {e}")
            )
            if err is not e:
                err.__cause__ = e
            log.error("%s", err)
            with self._cond:
                self._load_error = err
                pending = list(self._queue)
                self._queue.clear()
            _settle(self._ready, error=err)
            for job in pending:
                _settle(job.future, error=err)
            return
        self._engine = engine
        _settle(self._ready, result=engine.info)
        try:
            while True:
                with self._cond:
                    while not self._queue and not self._closing:
                        self._cond.wait()
                    if self._closing:
                        return
                    job = self._queue.popleft()
                    self._running = job
                try:
                    self._run(engine, job)
                finally:
                    with self._cond:
                        self._running = None
        finally:
            try:
                engine.close()
            except Exception:  # noqa: BLE001 - closing must not hide the real outcome
                log.exception("closing the engine failed")

    def _run(self, engine: Backend, job: _Job) -> None:
        if job.future.cancelled():
            self.stats["cancelled"] += 1
            return

        def should_stop() -> bool:
            return job.superseded or job.future.cancelled() or self._closing

        try:
            gen = engine.generate(job.request, should_stop)
        except Exception as e:  # noqa: BLE001 - errors go back on the future
            self.stats["errors"] += 1
            _settle(job.future, error=_as_generation_error(e, engine))
            return
        except BaseException as e:  # noqa: BLE001 - SystemExit and co.: stop, and say so to all
            err = GenerationError(f"the model worker stopped: {type(e).__name__}: {e}")
            with self._cond:
                self._closing = True
                pending = list(self._queue)
                self._queue.clear()
            for j in (job, *pending):
                _settle(j.future, error=err)
            log.error("%s", err)  # the loop sees _closing and ends the thread
            return
        if gen.finish_reason == "cancelled":
            self.stats["cancelled"] += 1
        else:
            self.stats["completed"] += 1
        _settle(job.future, result=gen)


def _as_generation_error(e: Exception, engine: Backend) -> GenerationError:
    torch = sys.modules.get("torch")  # only a loaded torch can have raised a CUDA error
    if torch is not None and isinstance(e, torch.cuda.OutOfMemoryError):
        reset = getattr(engine, "reset_cache", None)
        if reset is not None:
            reset(release=True)  # drop the KV cache: it is the memory we can give back
        torch.cuda.empty_cache()
        err = GenerationError(
            "the GPU ran out of memory; the prompt cache was dropped. Try a shorter prompt, "
            "fewer new tokens, or --dtype float16"
        )
    elif isinstance(e, GenerationError):
        return e
    else:
        log.exception("generation failed")
        err = GenerationError(f"generation failed: {type(e).__name__}: {e}")
    err.__cause__ = e
    return err
