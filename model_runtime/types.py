"""Plain data types, constants and the ``Backend`` protocol of the model runtime.

No torch here: importing this is free (``phi-lsp --help`` and the settings use it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

FinishReason = Literal["eos", "length", "stop", "stop_fn", "cancelled"]

# What ``load_engine`` accepts (the CLI's choices and the settings' checks read these).
DEVICES = ("auto", "cpu", "cuda", "mps")
# int8/int4: torchao weight-only quantization (model_runtime/quant.py).
DTYPES = ("auto", "float16", "bfloat16", "float32", "int8", "int4")


class ModelLoadError(RuntimeError):
    """A model spec could not be turned into an engine. The message says what to do."""


class GenerationError(RuntimeError):
    """The model failed while generating (CUDA OOM, a crashed backend, a bad response)."""


@dataclass(frozen=True)
class GenerationRequest:
    """One left-to-right continuation of ``prompt``.

    ``forced_prefix`` is text the output must start with (token healing: the
    prompt ends at its last non-whitespace token and the newline + indentation
    after it is generated, constrained, so the model sits at a token boundary it
    saw in training). The returned text includes it.
    """

    prompt: str
    forced_prefix: str = ""
    max_new_tokens: int = 64
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()  # output is cut before the first of these
    # Called with the text generated so far (forced prefix included) after every
    # token; True ends generation at once ("stop_fn").
    stop_fn: Callable[[str], bool] | None = field(default=None, compare=False)
    # Requests with the same non-empty key supersede each other in a Worker
    # (e.g. the document URI): the newer one cancels the older.
    key: str = ""


@dataclass(frozen=True)
class Generation:
    text: str
    finish_reason: FinishReason
    prompt_tokens: int = 0
    reused_tokens: int = 0  # prompt tokens whose KV came from the cache
    new_tokens: int = 0
    prefill_ms: float = 0.0
    decode_ms: float = 0.0
    total_ms: float = 0.0


@dataclass(frozen=True)
class EngineInfo:
    spec: str  # what the user asked for, e.g. "tiny" or "microsoft/phi-1"
    source: str  # where the weights came from (a directory, a hub id, a URL)
    backend: str  # "local", "replay", "openai"
    device: str = "cpu"
    dtype: str = "float32"
    params: int = 0
    context_length: int = 2048
    architecture: str = ""

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def first_stop(text: str, stops: tuple[str, ...], start: int = 0) -> int | None:
    """Index of the earliest stop string in ``text`` at or after ``start`` (empty ones
    never match), or None."""
    hits = [i for s in stops if s and (i := text.find(s, start)) >= 0]
    return min(hits) if hits else None


def stop_at(
    text: str, request: GenerationRequest, start: int = 0
) -> tuple[str, FinishReason] | None:
    """Where the request's stop rules end ``text`` (the output so far): cut before the
    first stop string (searched from ``start``) → "stop"; ``stop_fn`` says so → the
    text whole, "stop_fn"; else None (go on). Every backend applies them this way."""
    cut = first_stop(text, request.stop, start)
    if cut is not None:
        return text[:cut], "stop"
    if request.stop_fn is not None and request.stop_fn(text):
        return text, "stop_fn"
    return None


class Backend(Protocol):
    """What generates text: the local engine, ``replay:``, ``openai:`` and the Worker
    (which runs one of those on its own thread) all offer this.

    ``count_tokens`` may be called from any thread (it reads the tokenizer, never the
    model); ``generate`` is not thread-safe for an engine: one Worker thread owns it.
    """

    @property
    def info(self) -> EngineInfo: ...

    def count_tokens(self, text: str) -> int: ...

    def generate(
        self, request: GenerationRequest, should_stop: Callable[[], bool] | None = None
    ) -> Generation:
        """Run one request. ``should_stop`` is polled between tokens; True ends
        generation with finish_reason "cancelled"."""
        ...

    def close(self) -> None: ...


Engine = Backend  # the name the loader and the contracts use for a single-thread backend
