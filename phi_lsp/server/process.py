"""Process life: stdio claimed for the protocol, exit with the editor, no child or
thread left behind."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import BinaryIO

from lsprotocol import types

from phi_lsp import __version__, lsp_logging
from phi_lsp.server.app import PhiLanguageServer
from phi_lsp.server.handlers import build_server

log = logging.getLogger("phi_lsp.server")


def serve(args: argparse.Namespace) -> int:
    """Entry point of ``phi-lsp [serve] [--stdio | --tcp --host H --port N]``."""
    overrides: dict[str, object] = {}
    # The flags win over the editor's settings (--remote-model, --api-key-env and
    # --ca-bundle were accepted by `serve` but not applied before).
    for key in ("model", "device", "log_level", "remote_model", "api_key_env", "ca_bundle"):
        value = getattr(args, key, None)
        if value:
            overrides[key] = value
    log_file = lsp_logging.setup(str(overrides.get("log_level", "info")), args.log_file)
    server = build_server(overrides, watch_parent=watch_parent)
    handler = lsp_logging.LspLogHandler(_log_sender(server))
    server.log_handler = handler
    server.log_file = str(log_file) if log_file else None  # "Show log" opens it
    lsp_logging.install_lsp_handler(handler)
    # What libraries print (torch's notes, bars, warnings) goes to the log at its level:
    # an editor shows every stderr line as an error.
    lsp_logging.capture_stderr()
    log.info("phi-lsp %s starting (pid %d, log file %s)", __version__, os.getpid(), log_file)
    try:
        if getattr(args, "tcp", False):
            server.start_tcp(args.host, args.port)
        else:
            stdin, stdout = _claim_stdio()
            server.start_io(stdin, stdout)
    finally:
        server.close()
        lsp_logging.remove_lsp_handler(handler)
    code = 0 if server.protocol._shutdown else 1
    log.info("phi-lsp exiting with %d", code)
    logging.shutdown()
    _exit_if_threads_linger(code)
    return code


def _log_sender(server: PhiLanguageServer) -> Callable[[int, str], None]:
    def send(level: int, text: str) -> None:
        if level >= logging.ERROR:
            kind = types.MessageType.Error
        elif level >= logging.WARNING:
            kind = types.MessageType.Warning
        elif level >= logging.INFO:
            kind = types.MessageType.Info
        else:
            kind = types.MessageType.Log
        server.window_log_message(types.LogMessageParams(type=kind, message=text))

    return send


def _claim_stdio() -> tuple[BinaryIO, BinaryIO]:
    """Keep the real stdout for the protocol; point fd 1 and sys.stdout at stderr.

    A stray print() (ours, a library's, or a C extension's) then lands in stderr
    instead of corrupting the JSON-RPC stream.
    """
    sys.stdout.flush()
    proto_out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr
    return sys.stdin.buffer, proto_out


def watch_parent(ls: PhiLanguageServer, pid: int | None) -> None:
    """Exit when the editor that started us dies (LSP initialize ``processId``)."""
    if not pid or pid == os.getpid() or not _pid_alive(pid):
        return  # unknown or another pid namespace: nothing to watch

    def watch() -> None:
        while not ls.closed:
            time.sleep(1.0)
            if not _pid_alive(pid):
                log.warning("editor process %d is gone; exiting", pid)
                ls.close()
                _end_children()
                logging.shutdown()
                os._exit(1)

    threading.Thread(target=watch, name="phi-parent-watch", daemon=True).start()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def _exit_if_threads_linger(code: int, grace_s: float = 2.0) -> None:
    """Threads stuck in a generation or a blocked read must not keep us alive.

    Our own request threads were told to stop (their cancel events are set, which
    also ends any verification sandbox they run): give them ``grace_s``. A thread
    still blocked after that, e.g. pygls' reader on an stdin the editor keeps open,
    must not hold the process: exit hard.
    """

    def lingering(ours_only: bool) -> list[threading.Thread]:
        return [
            t
            for t in threading.enumerate()
            if t is not threading.main_thread()
            and not t.daemon
            and t.is_alive()
            and (not ours_only or t.name.startswith("phi-"))
        ]

    deadline = time.monotonic() + grace_s
    while lingering(ours_only=True) and time.monotonic() < deadline:
        time.sleep(0.02)
    _end_children()
    if lingering(ours_only=False):
        sys.stderr.flush()
        os._exit(code)


def _end_children() -> None:
    """No child (a verification sandbox, in its own session) outlives the server.

    Sandboxes told to stop have ended by now; this is for one that was not told
    (a verification the pipeline runs without a cancel event). Linux /proc only.
    """
    me = os.getpid()
    try:
        names = os.listdir("/proc")
    except OSError:
        return
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        ppid, pgrp, pid = int(fields[1]), int(fields[2]), int(name)
        if ppid != me:
            continue
        with contextlib.suppress(OSError):
            if pgrp == pid:
                os.killpg(pid, signal.SIGKILL)  # the sandbox and whatever it forked
            else:
                os.kill(pid, signal.SIGKILL)
