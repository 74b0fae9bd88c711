"""Reading JSON-RPC frames from stdin without trusting the headers.

pygls' reader allocates whatever ``Content-Length`` says before the bytes arrive (a
header claiming a terabyte fails, one claiming a gigabyte waits forever for it: the
server stays alive and deaf) and reads header lines of any length. Here:

- header lines are at most ``MAX_HEADER_LINE`` bytes (a longer one is skipped);
- a ``Content-Length`` that is not a number is ignored, and the reader looks for the
  next frame's headers (resynchronises), as it does after any line it cannot use;
- a body is read in slices, so memory follows the bytes that actually came;
- a ``Content-Length`` over ``MAX_FRAME_BYTES`` cannot be skipped safely (where would
  the next frame start?): the server says why and exits, and the editor restarts it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import threading
from collections.abc import Callable
from typing import BinaryIO

from pygls.exceptions import JsonRpcException
from pygls.protocol import JsonRPCProtocol

log = logging.getLogger("phi_lsp.server")

MAX_FRAME_BYTES = 64 * 1024 * 1024  # documents over 10 MB are kept, not parsed: room for them
MAX_HEADER_LINE = 8192
_SLICE = 1 << 20


class FrameTooLarge(Exception):
    pass


class FrameReader:
    def __init__(self, stream: BinaryIO, max_body: int = MAX_FRAME_BYTES) -> None:
        self._stream = stream
        self._max_body = max_body

    def read(self) -> bytes | None:
        """The next frame's body; None at the end of the input. Raises FrameTooLarge."""
        length: int | None = None
        while True:
            line = self._stream.readline(MAX_HEADER_LINE + 1)
            if not line:
                return None
            if len(line) > MAX_HEADER_LINE and not line.endswith(b"\n"):
                log.warning("skipped a header line over %d bytes", MAX_HEADER_LINE)
                if not self._skip_line():
                    return None
                length = None
                continue
            text = line.strip()
            if not text:
                if length is None:
                    continue  # a blank line with no length before it: keep looking
                body = self._body(length)
                if body is None:
                    return None
                return body
            # The header may follow leftovers of a broken frame on the same line.
            at = text.lower().rfind(b"content-length:")
            if at < 0:
                continue  # Content-Type, or bytes left over from a broken frame
            value = text[at + len(b"content-length:") :].strip()
            if not value.isdigit():
                log.warning("ignored a bad Content-Length header: %r", value[:40])
                length = None
                continue
            length = int(value)
            if length > self._max_body:
                raise FrameTooLarge(
                    f"a message claims {length} bytes, over the {self._max_body} byte limit"
                )

    def _skip_line(self) -> bool:
        while True:
            chunk = self._stream.readline(MAX_HEADER_LINE)
            if not chunk:
                return False
            if chunk.endswith(b"\n"):
                return True

    def _body(self, length: int) -> bytes | None:
        parts: list[bytes] = []
        left = length
        while left:
            part = self._stream.read(min(left, _SLICE))
            if not part:
                return None
            parts.append(part)
            left -= len(part)
        return b"".join(parts)


ErrorHandler = Callable[[Exception, type[JsonRpcException]], object]


async def serve_frames(
    stop: threading.Event,
    reader: FrameReader,
    protocol: JsonRPCProtocol,
    executor: concurrent.futures.Executor,
    on_error: ErrorHandler,
) -> None:
    """Read frames on a thread, handle them on the loop, until the input ends."""
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        try:
            body = await loop.run_in_executor(executor, reader.read)
        except FrameTooLarge as e:
            log.error("%s; cannot find the next message, so the server exits", e)
            return
        if body is None:
            return
        try:
            message = json.loads(body, object_hook=protocol.structure_message)
            protocol.handle_message(message)
        except Exception as exc:
            on_error(exc, JsonRpcException)
