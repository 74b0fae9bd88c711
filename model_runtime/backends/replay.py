"""A deterministic "model" that continues any prompt with the text of a file.

``replay:PATH`` emits the request's forced prefix first, then PATH's text, in
small token-like pieces so that stop strings, the stop callback, max_new_tokens
and cancellation behave as they do for a real model. Fed "the true rest of the
file", it acts as a perfect model whatever the pipeline cut back.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

from model_runtime.types import (
    EngineInfo,
    Generation,
    GenerationRequest,
    ModelLoadError,
    stop_at,
)

# Roughly what a code BPE makes: a run of spaces, a word with its leading space,
# a number, or a single other character.
_PIECE = re.compile(r"\n| +(?=\S)|[ \t]+|\s?[A-Za-z_]+|\s?\d+|\s?[^\sA-Za-z_\d]")


def pieces(text: str) -> list[str]:
    return _PIECE.findall(text)


class ReplayEngine:
    def __init__(self, path: str | Path, delay_s: float = 0.0) -> None:
        p = Path(path).expanduser()
        try:
            self._text = p.read_text(encoding="utf-8")
        except OSError as e:
            raise ModelLoadError(f"replay: cannot read {p}: {e.strerror or e}") from e
        self._delay_s = delay_s  # per token, to make cancellation testable
        self.info = EngineInfo(
            spec=f"replay:{path}",
            source=str(p),
            backend="replay",
            device="cpu",
            dtype="n/a",
            context_length=1 << 20,
            architecture="replay",
        )

    def count_tokens(self, text: str) -> int:
        return len(pieces(text))

    def generate(
        self, request: GenerationRequest, should_stop: Callable[[], bool] | None = None
    ) -> Generation:
        t0 = time.perf_counter()
        out = ""
        reason = "eos"
        n = 0
        stream = [*pieces(request.forced_prefix), *pieces(self._text)]
        for piece in stream:
            if should_stop is not None and should_stop():
                reason = "cancelled"
                break
            if n >= request.max_new_tokens:
                reason = "length"
                break
            if self._delay_s:
                time.sleep(self._delay_s)
            out += piece
            n += 1
            end = stop_at(out, request)
            if end is not None:
                out, reason = end
                break
        ms = (time.perf_counter() - t0) * 1000
        return Generation(
            text=out,
            finish_reason=reason,  # type: ignore[arg-type]
            prompt_tokens=self.count_tokens(request.prompt),
            new_tokens=n,
            decode_ms=ms,
            total_ms=ms,
        )

    def close(self) -> None:
        pass
