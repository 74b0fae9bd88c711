"""Progress of the long first steps: downloading weights, building ``tiny``, loading.

A producer (``download.download``, ``tiny.build_tiny``, the loader) calls a
``ProgressFn`` with ``Progress`` events; consumers turn them into ``$/progress`` (the
server) or a bar / a line per step on stderr (``TerminalProgress``, the CLI).
Producers send an event only when the whole percentage changes, so a consumer can
forward each one without throttling.

Also here: ``library_progress``, which routes transformers' own progress bars
("Loading weights", "Writing model shards") into a ``ProgressFn`` or into nothing, so
that they never land on stderr (an editor shows stderr as errors).
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal, TextIO

Stage = Literal["download", "build", "load"]


@dataclass(frozen=True)
class Progress:
    """One step of a long first step. ``done``/``total`` in ``unit`` (bytes for a
    download, training steps for a build, tensors for a load); total None: unknown."""

    stage: Stage
    message: str  # short, for a status line: "downloading microsoft/phi-1"
    done: float = 0
    total: float | None = None
    unit: str = ""

    @property
    def percent(self) -> int | None:
        if not self.total:
            return None
        return max(0, min(100, int(100 * self.done / self.total)))

    def describe(self) -> str:
        """``downloading microsoft/phi-1: 42 % (1.2 of 2.8 GB)``."""
        pct = self.percent
        if pct is None:
            return self.message
        text = f"{self.message}: {pct} %"
        if self.unit == "B" and self.total:
            text += f" ({_size(self.done)} of {_size(self.total)})"
        elif self.unit and self.total:
            text += f" ({int(self.done)}/{int(self.total)} {self.unit})"
        return text


ProgressFn = Callable[[Progress], None]


class Stop(Exception):
    """Raised by a ``ProgressFn`` to stop the work it hears about (the load was
    superseded: a new model setting, a shutdown). It goes through ``Reporter``."""


def _size(n: float) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{int(n)} B"


class Reporter:
    """Calls ``fn`` when the whole percentage (or the message) changes; never raises
    from the consumer's side (a broken consumer must not break a download)."""

    def __init__(
        self, fn: ProgressFn | None, stage: Stage, message: str, total: float | None, unit: str = ""
    ) -> None:
        self.fn, self.stage, self.message, self.total, self.unit = fn, stage, message, total, unit
        self.done: float = 0
        self._last: tuple[str, int | None] | None = None

    def update(self, done: float, message: str | None = None, total: float | None = None) -> None:
        self.done = done
        if message is not None:
            self.message = message
        if total is not None:
            self.total = total
        ev = Progress(self.stage, self.message, self.done, self.total, self.unit)
        key = (ev.message, ev.percent)
        if self.fn is None or key == self._last:
            return
        self._last = key
        # A consumer's failure (a closed stream, a gone client) must not stop the work;
        # only a deliberate Stop does.
        try:
            self.fn(ev)
        except Stop:
            raise
        except Exception:
            pass


class TerminalProgress:
    """A ``ProgressFn`` for the CLI: a redrawn bar on a terminal, otherwise one line
    per step (its first, then every 10 % at most once a second, and its 100 %).
    ``delay_s``: a step that is over sooner shows nothing (loading a cached model must
    not chatter on every run)."""

    def __init__(
        self,
        stream: TextIO | None = None,
        tty: bool | None = None,
        delay_s: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.delay_s = delay_s
        self._clock = clock
        self._line = ""  # what the bar shows now (tty)
        self._last: tuple[str, str, int] | None = None
        self._last_t = 0.0
        self._step: tuple[str, str] | None = None
        self._step_t0 = 0.0
        self._lock = threading.Lock()

    def __call__(self, p: Progress) -> None:
        with self._lock:
            now = self._clock()
            if (p.stage, p.message) != self._step:
                self._step, self._step_t0 = (p.stage, p.message), now
            if self.delay_s and now - self._step_t0 < self.delay_s:
                return
            pct = p.percent
            if self.tty:
                self._draw(p, pct)
            else:
                step = -1 if pct is None else pct // 10
                key = (p.stage, p.message, step)
                new_step = self._last is None or self._last[:2] != key[:2]
                due = now - self._last_t >= 1.0 or pct == 100
                if key != self._last and (new_step or due):
                    self._last, self._last_t = key, now
                    self.stream.write(f"phi-lsp: {p.describe()}\n")
            self.stream.flush()

    def _draw(self, p: Progress, pct: int | None) -> None:
        if self._line and self._last is not None and self._last[:2] != (p.stage, p.message):
            self.stream.write("\n")  # a new step: keep the finished one on screen
        self._last = (p.stage, p.message, pct or 0)
        width = 30
        if pct is None:
            text = f"phi-lsp: {p.message} ..."
        else:
            bar = "#" * (width * pct // 100)
            text = f"phi-lsp: [{bar:.<{width}}] {p.describe()}"
        pad = max(0, len(self._line) - len(text))
        self.stream.write("\r" + text + " " * pad)
        self._line = text
        if pct == 100:
            self.stream.write("\n")
            self._line = ""

    def close(self) -> None:
        with self._lock:
            if self.tty and self._line:
                self.stream.write("\n")
                self._line = ""
            self.stream.flush()


# --- transformers' own progress bars ---------------------------------------------------

_local = threading.local()
_hook_lock = threading.Lock()
_hook_installed = False


class _Silent:
    """A tqdm stand-in that shows nothing; iterating it iterates the wrapped iterable."""

    def __init__(self, iterable: Any = None, **_: Any) -> None:
        self._it = iterable

    def __iter__(self) -> Iterator[Any]:
        return iter(self._it if self._it is not None else ())

    def __enter__(self) -> _Silent:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def __getattr__(self, _name: str) -> Callable[..., None]:
        return lambda *a, **k: None


class _Reporting(_Silent):
    """The "Loading weights" bar: counts the tensors as transformers loads them."""

    def __init__(self, iterable: Any, reporter: Reporter, total: int | None) -> None:
        super().__init__(iterable)
        self._reporter = reporter
        self._reporter.total = total
        self._n = 0

    def __iter__(self) -> Iterator[Any]:
        for item in super().__iter__():
            yield item
            self._n += 1
            self._reporter.update(self._n)

    def update(self, n: float = 1) -> None:
        self._n += int(n)
        self._reporter.update(self._n)


def _hook(factory: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    reporter: Reporter | None = getattr(_local, "reporter", None)
    iterable: Any = args[0] if args else kwargs.get("iterable")
    desc = str(kwargs.get("desc", ""))
    if reporter is not None and desc.startswith("Loading weights"):
        total = kwargs.get("total")
        if total is None:
            with contextlib.suppress(TypeError):
                total = len(iterable)
        return _Reporting(iterable, reporter, total)
    return _Silent(iterable)


def _install_hook() -> bool:
    """transformers' ``set_tqdm_hook`` (5.x): every bar it makes comes through ``_hook``."""
    global _hook_installed
    with _hook_lock:
        if _hook_installed:
            return True
        try:
            from transformers.utils import logging as tlog
        except ImportError:
            return False
        setter = getattr(tlog, "set_tqdm_hook", None)
        if setter is None:  # older transformers: its bars are only switched off
            tlog.disable_progress_bar()
            return False
        setter(_hook)
        _hook_installed = True
        return True


@contextlib.contextmanager
def library_progress(reporter: Reporter | None) -> Iterator[None]:
    """While inside: transformers' "Loading weights" bar reports to ``reporter`` (on
    this thread); every other bar of it is silent. Library bars never reach stderr."""
    _install_hook()
    prev = getattr(_local, "reporter", None)
    _local.reporter = reporter
    try:
        yield
    finally:
        _local.reporter = prev
