"""Logging for the language server: ``window/logMessage`` and a file, never stdout.

stdout is the protocol channel under ``--stdio``; one stray byte there breaks the
editor's connection, so the only handlers installed here are the LSP forwarder and
a rotating file in ``platformdirs.user_log_dir("phi-lsp")`` (or ``--log-file``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import logging.handlers
import os
import re
import threading
from collections.abc import Callable
from pathlib import Path

import platformdirs

# Our own loggers. pygls logs every message it sends at INFO; forwarding those to
# window/logMessage would feed back on itself, so pygls only reaches the file.
FORWARDED = ("phi_lsp", "model_runtime")

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}

_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(threadName)s] %(message)s"


def default_log_file() -> Path:
    return Path(platformdirs.user_log_dir("phi-lsp")) / "phi-lsp.log"


class LspLogHandler(logging.Handler):
    """Forwards records to the client as ``window/logMessage``.

    ``send(level, text)`` is called on the event loop thread: records from worker
    threads are handed over with ``call_soon_threadsafe`` so that two threads never
    write to the protocol stream at once.
    """

    def __init__(self, send: Callable[[int, str], None], level: int = logging.INFO) -> None:
        super().__init__(level)
        self._send = send
        self._loop: asyncio.AbstractEventLoop | None = None
        self._local = threading.local()
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def emit(self, record: logging.LogRecord) -> None:
        if self._loop is None or self._loop.is_closed():
            return
        if getattr(self._local, "busy", False):  # a log call made while sending one
            return
        try:
            text = self.format(record)
        except Exception:
            self.handleError(record)
            return
        level = record.levelno
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._deliver(level, text)
        else:
            # RuntimeError: the loop closed between the check and the call.
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._deliver, level, text)

    def _deliver(self, level: int, text: str) -> None:
        self._local.busy = True
        try:
            self._send(level, text)
        except Exception:
            pass  # the client is gone; the file handler still has the record
        finally:
            self._local.busy = False


def setup(level: str = "info", log_file: str | Path | None = None) -> Path | None:
    """Install the file handler; the LSP forwarder comes later (``install_lsp_handler``).

    Returns the file actually used, or None if it could not be opened (logging then
    reaches the client only).
    """
    path = Path(log_file) if log_file else default_log_file()
    root = logging.getLogger()
    root.setLevel(LEVELS.get(level, logging.INFO))
    # Drop handlers that could write to stdout (e.g. a basicConfig done by a library).
    for h in list(root.handlers):
        if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler):
            root.removeHandler(h)
    used: Path | None = path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fh = logging.handlers.RotatingFileHandler(
            path,
            maxBytes=2_000_000,
            backupCount=2,
            encoding="utf-8",
            errors="backslashreplace",  # lone surrogates from odd documents must not fail
        )
        fh.setFormatter(logging.Formatter(_FORMAT))
        fh.setLevel(LEVELS.get(level, logging.INFO))
        fh.set_name("phi-lsp-file")
        root.addHandler(fh)
    except OSError:
        used = None
    # pygls is chatty at INFO (every message sent); keep it at WARNING in the file too.
    logging.getLogger("pygls").setLevel(logging.WARNING)
    logging.raiseExceptions = False  # a broken handler must never break the server
    return used


def install_lsp_handler(handler: LspLogHandler) -> None:
    for name in FORWARDED:
        lg = logging.getLogger(name)
        lg.addHandler(handler)


def remove_lsp_handler(handler: LspLogHandler) -> None:
    for name in FORWARDED:
        logging.getLogger(name).removeHandler(handler)


def set_level(level: str, handler: LspLogHandler | None) -> None:
    """Apply the ``logLevel`` setting to the client forwarder and the file."""
    value = LEVELS.get(level, logging.INFO)
    # The root level too: debug records are then not even built unless asked for.
    logging.getLogger().setLevel(value)
    if handler is not None:
        handler.setLevel(value)
    for h in logging.getLogger().handlers:
        if h.get_name() == "phi-lsp-file":
            h.setLevel(value)


# --- stderr: what libraries print goes to the log, at its level ----------------------------

_GLOG = re.compile(r"^([IWEF])\d{4} \d\d:\d\d:\d\d")  # torch / absl: "W1202 04:07:34.9 ..."
_NAMED = re.compile(r"^\[?(DEBUG|INFO|WARNING|WARN|ERROR|CRITICAL|FATAL)\]?[\s:]")
_WARNING = re.compile(r"\b\w*Warning\b[:\s]|^warning\b", re.IGNORECASE)
_ERROR = re.compile(
    r"^(Traceback \(most recent call last\)|Fatal Python error|\w+(Error|Exception)\b)"
)
_GLOG_LEVELS = {"I": logging.INFO, "W": logging.WARNING, "E": logging.ERROR, "F": logging.CRITICAL}


def stderr_level(line: str, in_traceback: bool = False) -> int:
    """The level a line that a library printed to stderr deserves: its own marker
    (glog's W/E prefix, ``WARNING:``, ``FutureWarning:``), a traceback is an error,
    a progress bar is info, anything else a warning (something was said unasked)."""
    if in_traceback or _ERROR.match(line):
        return logging.ERROR
    if m := _GLOG.match(line):
        return _GLOG_LEVELS[m.group(1)]
    if m := _NAMED.match(line):
        name = m.group(1).upper()
        return {"WARN": logging.WARNING, "FATAL": logging.CRITICAL}.get(
            name, getattr(logging, name, logging.WARNING)
        )
    if _WARNING.search(line):
        return logging.WARNING
    if "%|" in line or re.search(r"\d+/\d+ \[", line):  # a tqdm bar
        return logging.INFO
    return logging.WARNING


def capture_stderr() -> None:
    """Point fd 2 at a pipe whose lines become log records (``phi_lsp.stderr``): the
    file and ``window/logMessage`` at their level, instead of the editor's stderr
    channel, which shows every line as an error (torch's and torchao's import notes,
    progress bars, warnings). Error lines (a traceback) still reach the real stderr
    too, so a crash is seen even when logging is broken."""
    real = os.dup(2)
    r, w = os.pipe()
    os.dup2(w, 2)
    os.close(w)
    out = logging.getLogger("phi_lsp.stderr")

    def pump() -> None:
        buf = b""
        in_traceback = False
        while True:
            try:
                chunk = os.read(r, 65536)
            except OSError:
                return
            if not chunk:
                return
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for raw in lines:
                # A bar redrawn with \r: its last state is the line.
                line = raw.decode("utf-8", "replace").split("\r")[-1].rstrip()
                if not line.strip():
                    continue
                if line.startswith("Traceback"):
                    in_traceback = True
                elif in_traceback and not line.startswith((" ", "\t")):
                    in_traceback = False
                    level = logging.ERROR  # the exception line that ends it
                    _emit(out, level, line, real)
                    continue
                _emit(out, stderr_level(line, in_traceback), line, real)

    threading.Thread(target=pump, name="stderr-to-log", daemon=True).start()


def _emit(out: logging.Logger, level: int, line: str, real: int) -> None:
    out.log(level, "%s", line)
    if level >= logging.ERROR:
        with contextlib.suppress(OSError):
            os.write(real, (line + "\n").encode("utf-8", "replace"))
