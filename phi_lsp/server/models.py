"""One way to load the model, for the language server and the Python API.

    settings ──EngineConfig.of──▶ config ──load()──▶ Engine ──▶ Completer

``EngineConfig`` is everything loading depends on, so "does this settings change need
a reload?" is ``EngineConfig.of(old) != EngineConfig.of(new)``: no second list of keys.
``load`` holds the one device policy (asked for CUDA without one: the CPU, with a
warning). ``ModelManager`` is the server's owner of the model: a Worker thread loads
it in the background and the manager reports an explicit state (starting,
downloading N %, loading, ready, error, disabled) to one listener. ``progress`` hooks
let a download report where it is. ``load_completer`` is the synchronous path for
scripts (``phi_lsp.api``), one engine per config per process.

No pygls here: ``phi_lsp.api`` imports this without the server.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import TYPE_CHECKING, Literal

from model_runtime import Engine, EngineInfo
from phi_lsp.completion import Completer
from phi_lsp.settings import Settings

if TYPE_CHECKING:
    from model_runtime.progress import ProgressFn
    from model_runtime.worker import Worker

log = logging.getLogger("phi_lsp.server.models")

State = Literal["starting", "downloading", "loading", "ready", "error", "disabled"]
OptionValue = str | float


@dataclasses.dataclass(frozen=True)
class EngineConfig:
    """What loading an engine depends on (and nothing else)."""

    spec: str
    device: str
    dtype: str
    options: tuple[tuple[str, OptionValue], ...] = ()

    @classmethod
    def of(cls, s: Settings) -> EngineConfig:
        options: dict[str, OptionValue] = {}
        if s.model.startswith("openai:"):  # the remote server's model name and key
            if s.remote_model:
                options["remote_model"] = s.remote_model
            if s.api_key_env:
                options["api_key_env"] = s.api_key_env
            if s.ca_bundle:
                options["ca_bundle"] = s.ca_bundle
        delay = os.environ.get("PHI_LSP_REPLAY_DELAY_S")
        if s.model.startswith("replay:") and delay:
            # Test knob: a slow deterministic model, to observe cancellation end to end.
            options["replay_delay_s"] = float(delay)
        return cls(s.model, s.device, s.dtype, tuple(sorted(options.items())))

    @property
    def local(self) -> bool:
        return not self.spec.startswith(("replay:", "openai:"))


def needs_reload(old: Settings, new: Settings) -> bool:
    return old.enable != new.enable or EngineConfig.of(old) != EngineConfig.of(new)


# progress(state, percent or None, message): where a load is ("downloading", 42.0, ...).
Progress = Callable[[State, "float | None", str], None]


def _no_progress(state: State, percent: float | None, message: str) -> None:
    pass


def resolve_device(config: EngineConfig) -> str:
    """The device to load on: asked for CUDA where there is none, the CPU (warned)."""
    if config.device != "cuda" or not config.local:
        return config.device
    try:
        import torch

        has_cuda = bool(torch.cuda.is_available())
    except Exception:
        has_cuda = False
    if has_cuda:
        return "cuda"
    log.warning("phiLsp.device is 'cuda' but no CUDA GPU is available; using the CPU")
    return "cpu"


def load(
    config: EngineConfig,
    progress: Progress = _no_progress,
    steps: ProgressFn | None = None,
    superseded: Callable[[], bool] | None = None,
) -> Engine:
    """Load the engine for ``config`` on the calling thread. Raises ModelLoadError.

    ``progress`` is the hook for the stages before "ready" (a download reports
    "downloading" with a percentage through it); ``steps`` gets the runtime's own
    events (the CLI draws them on stderr). ``superseded`` true: the download, build
    or load stops at its next step (a newer setting wants another model).
    """
    from model_runtime import load_engine
    from model_runtime.progress import Progress as Step
    from model_runtime.progress import Stop

    device = resolve_device(config)
    progress("loading", None, f"loading {config.spec}")

    def relay(step: Step) -> None:  # download / build tiny / load, each 0..100 %
        if superseded is not None and superseded():
            raise Stop(f"loading {config.spec} was superseded")
        state: State = "downloading" if step.stage == "download" else "loading"
        progress(state, step.percent, step.describe())
        if steps is not None:
            steps(step)

    return load_engine(
        config.spec,
        device=device,
        dtype=config.dtype,
        progress=relay,
        **dict(config.options),
    )


# --- scripts: synchronous, one engine per config per process ---------------------------

_lock = threading.Lock()
_completers: dict[EngineConfig, Completer] = {}


def load_completer(settings: Settings, steps: ProgressFn | None = None) -> Completer:
    """The Completer for ``settings`` (its engine generates on the calling thread);
    ``steps`` hears a first load's download/build/load progress."""
    config = EngineConfig.of(settings)
    with _lock:
        c = _completers.get(config)
        if c is None:
            c = _completers[config] = Completer(load(config, steps=steps), settings)
        c.settings = settings
        return c


# --- the server: a background Worker and an explicit state -------------------------------


@dataclasses.dataclass(frozen=True)
class ModelStatus:
    """What the editor is told (``phiLsp/status``)."""

    state: State
    model: str
    device: str = ""
    message: str = ""
    percent: float | None = None  # "downloading" only
    warning: str = ""  # shown once to the user (e.g. running on the CPU)
    generation: int = 0  # which (re)load this is about
    dtype: str = ""  # "ready" only: the weights' variant (float32, int8, int4, ...)

    def to_wire(self) -> dict[str, str | float]:
        wire: dict[str, str | float] = {
            "state": self.state,
            "model": self.model,
            "device": self.device,
            "message": self.message,
        }
        if self.percent is not None:
            wire["percent"] = self.percent
        if self.dtype:
            wire["dtype"] = self.dtype
        return wire


StatusListener = Callable[[ModelStatus], None]


MAX_MESSAGE = 200  # an editor's toast: one short sentence or two; details go to the log
_FLAGS = {"--model": "phiLsp.model", "--device": "phiLsp.device", "--dtype": "phiLsp.dtype"}


def _failure_message(spec: str, error: BaseException) -> str:
    """One short message in the editor's words (setting names, not flags); the full
    reason is logged by the caller."""
    from model_runtime.download import ModelUnavailable

    if isinstance(error, ModelUnavailable):
        return f"phi-lsp: {error.short}"
    if isinstance(error, ImportError):  # the install is broken: say which one to fix
        return f"phi-lsp: {_missing_module(error)}"
    reason = (str(error) or type(error).__name__).strip()
    for flag, setting in _FLAGS.items():
        reason = reason.replace(flag, setting)
    if "out of memory" in reason.lower():
        return (
            f"phi-lsp: {spec} does not fit in memory. "
            "Try phiLsp.dtype float16 or phiLsp.device cpu."
        )
    # The reason often names the model already (a directory's path): say it once.
    head = "phi-lsp: " if spec in reason else f"phi-lsp could not load {spec}: "
    room = MAX_MESSAGE - len(head)
    if len(reason) > room:  # the first sentence, else a cut: the log has the rest
        first = re.split(r"(?<=[.;])\s", reason, maxsplit=1)[0].rstrip(".;")
        reason = first if len(first) <= room else first[: room - 24].rstrip() + "… (see the log)"
    text = head + reason.rstrip(".") + "."
    hint = " Check phiLsp.model."
    if "phiLsp." not in text and len(text) + len(hint) <= MAX_MESSAGE:
        text += hint
    return text


def _missing_module(error: ImportError) -> str:
    """What to run so that the Python running phi-lsp has the missing package: the
    repository's editable install when phi-lsp runs from a checkout (it is not on PyPI)."""
    import sys
    from pathlib import Path

    name = error.name or str(error)
    root = Path(__file__).resolve().parents[2]
    how = f"pip install -e {root}" if (root / "pyproject.toml").is_file() else "pip install -e ."
    return f"{name} is missing from {sys.executable}; run: {sys.executable} -m {how}"


class ModelManager:
    """Owns settings → engine config → Worker → Completer for the language server.

    ``start`` (re)loads in the background; ``completer`` is None until the state is
    "ready" (requests then get an empty answer at once). ``on_status`` is called on
    whichever thread the state changed (the loader's, the caller's), with the
    manager's lock held: it must only queue the status (the server hands it to its
    event loop). Reports of a superseded load are dropped.
    """

    def __init__(self, on_status: StatusListener | None = None) -> None:
        self._on_status = on_status
        self._lock = threading.Lock()
        self._generation = 0
        self._worker: Worker | None = None
        self._settings = Settings()
        self._cpu_warned: set[str] = set()
        self.completer: Completer | None = None
        self.info: EngineInfo | None = None
        self.status = ModelStatus("starting", self._settings.model)

    @property
    def generation(self) -> int:
        return self._generation

    def start(self, settings: Settings) -> None:
        """(Re)load the model for ``settings`` in the background."""
        from model_runtime.worker import Worker

        with self._lock:
            self._generation += 1
            gen = self._generation
            old, self._worker = self._worker, None
            self.completer, self.info, self._settings = None, None, settings
        if old is not None:
            _shutdown_later(old)
        if not settings.enable:
            self._report(gen, "disabled", "phi-lsp is disabled (phiLsp.enable is false)")
            return
        config = EngineConfig.of(settings)

        def hook(state: State, percent: float | None, message: str) -> None:
            self._report(gen, state, message, percent=percent)

        try:
            worker = Worker(lambda: load(config, hook, superseded=lambda: gen != self._generation))
        except Exception as e:  # the runtime itself is broken: say so, keep serving
            self._failed(gen, settings.model, e)
            return
        with self._lock:
            if gen != self._generation:  # superseded while the thread started
                _shutdown_later(worker)
                return
            self._worker = worker
        self._report(gen, "loading", f"loading {settings.model}")
        worker.ready().add_done_callback(lambda fut: self._loaded(gen, worker, settings, fut))

    def apply(self, old: Settings, new: Settings) -> bool:
        """Take new settings: reload if loading depends on what changed (True), else
        give the ready model a fresh Completer (its cache was made under the old ones)."""
        if needs_reload(old, new):
            log.info("model settings changed: reloading %s on %s", new.model, new.device)
            self.start(new)
            return True
        with self._lock:
            self._settings = new
            if old != new and self.completer is not None:
                self.completer = self.completer.with_settings(new)
        return False

    def report(self, state: State, message: str = "", percent: float | None = None) -> None:
        """Progress of the current load from outside (e.g. a download)."""
        self._report(self._generation, state, message, percent=percent)

    def close(self, grace_s: float = 2.0) -> None:
        with self._lock:
            self._generation += 1
            worker, self._worker, self.completer = self._worker, None, None
        if worker is not None:
            t = threading.Thread(target=_quiet_shutdown, args=(worker,), daemon=True)
            t.start()
            t.join(grace_s)

    # --- internals -------------------------------------------------------------------

    def _loaded(
        self, gen: int, worker: Worker, settings: Settings, fut: Future[EngineInfo]
    ) -> None:
        error = fut.exception()
        if error is not None:
            self._failed(gen, settings.model, error)
            return
        info = fut.result()
        try:
            completer = Completer(worker, settings)
        except Exception as e:
            self._failed(gen, settings.model, e)
            return
        with self._lock:
            if gen != self._generation:
                return
            self.completer, self.info = completer, info
            settings = self._settings  # what was set while it loaded, same engine config
            completer.settings = settings
        warning = ""
        if (
            info.backend == "local"
            and info.device == "cpu"
            and settings.device != "cpu"
            and settings.model not in self._cpu_warned
            # tiny (1 M parameters) belongs on the CPU, unless CUDA was asked for
            and (settings.model != "tiny" or settings.device == "cuda")
        ):
            self._cpu_warned.add(settings.model)
            warning = (
                f"phi-lsp: no CUDA GPU available; running {settings.model} on the CPU. "
                "Suggestions will be slow. Set phiLsp.device to 'cpu' to silence this warning."
            )
            log.warning("%s", warning)
        log.info("model %s ready on %s", settings.model, info.device)
        self._report(
            gen,
            "ready",
            f"{settings.model} on {info.device} ({info.dtype})",
            device=info.device,
            warning=warning,
            dtype=info.dtype,
        )

    def _failed(self, gen: int, spec: str, error: BaseException) -> None:
        message = _failure_message(spec, error)
        with self._lock:
            if gen != self._generation:
                return
            self.completer, self.info = None, None
        details = getattr(error, "details", "") or str(error) or type(error).__name__
        log.error("could not load %s: %s", spec, details)  # the whole story, for the log
        self._report(gen, "error", message)

    def _report(
        self,
        gen: int,
        state: State,
        message: str,
        *,
        percent: float | None = None,
        device: str = "",
        warning: str = "",
        dtype: str = "",
    ) -> None:
        with self._lock:
            if gen != self._generation:
                return
            status = ModelStatus(
                state,
                self._settings.model,
                device or self._settings.device,
                message,
                percent,
                warning,
                gen,
                dtype,
            )
            if status == self.status:
                return  # e.g. "loading" from the loader after the manager said so
            self.status = status
            # Under the lock, so that listeners see the states in the order they were set
            # (the listener only queues them).
            if self._on_status is not None:
                try:
                    self._on_status(status)
                except Exception:
                    log.exception("model status listener failed")


def _quiet_shutdown(worker: Worker) -> None:
    try:
        worker.shutdown(wait=True)
    except Exception:
        log.exception("worker shutdown failed")


def _shutdown_later(worker: Worker) -> None:
    threading.Thread(target=_quiet_shutdown, args=(worker,), daemon=True).start()
