"""The warm pool: one started-but-unused runner per interpreter, each serving one run.

Runners are started from one long-lived thread: their death-with-parent signal is tied to
the thread that started them. Part of ``sandbox.py``.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from phi_lsp.verify import isolation
from phi_lsp.verify._channel import _drive, _Run
from phi_lsp.verify._process import _READY_TIMEOUT_S, _Child

_T = TypeVar("_T")


class _Spawner:
    """One long-lived thread starts every runner: PR_SET_PDEATHSIG (bubblewrap's
    --die-with-parent, the runner's own) fires when the *thread* that forked it ends, so
    a runner started from a short-lived worker thread would die with that thread."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[
            tuple[concurrent.futures.Future[Any], Callable[..., Any], tuple[object, ...]]
        ] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, fn: Callable[..., _T], *args: object) -> concurrent.futures.Future[_T]:
        fut: concurrent.futures.Future[_T] = concurrent.futures.Future()
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._loop, name="phi-verify-spawner", daemon=True
                )
                self._thread.start()
        self._jobs.put((fut, fn, args))
        return fut

    def _loop(self) -> None:
        while True:
            fut, fn, args = self._jobs.get()
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                fut.set_result(fn(*args))
            except BaseException as e:  # noqa: BLE001 - handed to the waiting caller
                fut.set_exception(e)


_SPAWNER = _Spawner()


class _Pool:
    """One started-but-unused runner per interpreter; each runner serves one run."""

    def __init__(self, size: int = 1) -> None:
        self.size = size
        self._spare: dict[str, _Child] = {}
        self._pending: dict[str, concurrent.futures.Future[None]] = {}
        self._lock = threading.Lock()

    def _take(self, python: str, readable: tuple[str, ...], tmp_mb: int) -> _Child:
        # No waiting for a spare still being started: starting another in parallel is
        # faster back to back (the one in flight serves the next run).
        with self._lock:
            child = self._spare.pop(python, None)
        if child is not None:
            same = (child.readable, child.tmp_mb, child.mode) == (
                readable,
                tmp_mb,
                isolation.mode(),
            )
            if same and child.alive():
                return child
            child.kill()
        return _SPAWNER.submit(_Child, python, readable, tmp_mb).result()

    def _refill(self, python: str, readable: tuple[str, ...], tmp_mb: int) -> None:
        def make() -> None:
            try:
                with self._lock:
                    if python in self._spare or not self.size:
                        return
                try:
                    child = _Child(python, readable, tmp_mb)
                except (OSError, isolation.IsolationError):
                    return
                with self._lock:
                    if python not in self._spare and self.size:
                        self._spare[python] = child
                        return
                child.kill()
            finally:
                with self._lock:
                    if self._pending.get(python) is fut:
                        del self._pending[python]

        with self._lock:
            if python in self._pending:
                return
            fut = _SPAWNER.submit(make)
            self._pending[python] = fut

    def close(self) -> None:
        with self._lock:
            pending = list(self._pending.values())
        for fut in pending:  # a spare still being started would outlive the close
            with contextlib.suppress(Exception):
                fut.result(timeout=_READY_TIMEOUT_S)
        with self._lock:
            spare, self._spare = list(self._spare.values()), {}
        for child in spare:
            child.kill()

    def run(
        self,
        python: str,
        readable: tuple[str, ...],
        tmp_mb: int,
        job: dict,
        timeout_s: float,
        cancel: threading.Event | None,
    ) -> _Run:
        child = self._take(python, readable, tmp_mb)
        try:
            return _drive(child, job, timeout_s, cancel)
        finally:
            if self.size:  # the next spare starts while this one is killed
                self._refill(python, readable, tmp_mb)
            child.kill()
