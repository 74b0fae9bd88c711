"""``openai:URL``: generation by a remote OpenAI-compatible server (vLLM, llama.cpp's server).

A team runs one inference server and every editor's phi-lsp talks to it through
``/v1/completions`` with streaming (server-sent events). The engine behaves like the
local one for the pipeline: ``stop`` strings, the ``stop_fn`` callback (checked after
every streamed chunk, which servers send per token), ``max_new_tokens``, sampling
parameters and cancellation (the HTTP stream is closed, so the server notices the
disconnect and stops generating).

Forced prefix (token healing). A remote server cannot constrain the first tokens, so
the engine first asks for a continuation of the prompt as the pipeline cut it (ending
at the last non-whitespace token, the boundary the model saw in training) and accepts
it when the streamed text starts with the forced prefix, which is what a model does
almost always ("\\n    return ..."). When the text diverges from the prefix the stream
is closed and the request is sent again with the prefix appended to the prompt; the
prefix is then prepended to the returned text. Cost of that fallback: one more round
trip, the prompt evaluated again (cheap with prefix caching), and a prompt that ends in
whitespace, the token boundary the design warns about (a weaker first line). Servers
that do not cache prompts pay the whole prompt twice in that case only.

The API key is read from the environment variable named by ``api_key_env`` at load;
it is sent only as ``Authorization: Bearer`` and scrubbed from every message.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from model_runtime.backends.openai_http import (
    Cancelled,
    ServerClient,
    iter_sse_data,
    normalize_url,
    parse_chunk,
    redact_url,
)
from model_runtime.types import (
    EngineInfo,
    Generation,
    GenerationError,
    GenerationRequest,
    ModelLoadError,
    stop_at,
)

log = logging.getLogger(__name__)

__all__ = ["OpenAIEngine", "iter_sse_data", "normalize_url", "parse_chunk", "redact_url"]

CHARS_PER_TOKEN = 3.5  # estimate for code BPEs when the server has no tokenize endpoint
DEFAULT_CONTEXT = 2048  # Phi-1's window, when the server does not say


@dataclass
class _Choice:
    """Text and state of one streamed choice."""

    text: str = ""
    chunks: int = 0
    finish: str | None = None  # our FinishReason once decided
    server_finish: str | None = None
    diverged: bool = False  # heal mode: the text did not start with the forced prefix
    usage_tokens: int | None = None
    first_token_s: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class _Diverged(Exception):
    """Internal: heal mode saw text that does not start with the forced prefix."""


# --- the engine -----------------------------------------------------------------------


class OpenAIEngine:
    """An Engine backed by ``POST {url}/completions`` with ``stream: true``."""

    def __init__(
        self,
        url: str,
        *,
        remote_model: str = "",
        extra_body: dict[str, Any] | None = None,
        **client_options: Any,
    ) -> None:
        """``client_options`` go to ``ServerClient`` (api_key_env, timeouts, TLS, retries)."""
        # Server-specific sampling fields sent with every completion (vLLM's min_tokens,
        # a logit_bias, ...); the request's own fields win.
        self._extra_body = dict(extra_body or {})
        self._client = ServerClient(url, **client_options)
        self.url, self._shown = self._client.url, self._client.shown
        self._tokenize: str | None = None  # "", "llama-cpp-python", "vllm", "llama.cpp"
        self._count_cache: dict[str, int] = {}
        try:
            self.models = self._list_models()
        except GenerationError as e:
            self._client.close()
            raise ModelLoadError(str(e)) from None
        except BaseException:
            self._client.close()
            raise
        ids = [str(m.get("id", "")) for m in self.models]
        if remote_model:
            self.model = remote_model
            if ids and remote_model not in ids:
                log.warning(
                    "remoteModel %r is not among the models the server lists (%s)",
                    remote_model,
                    ", ".join(ids),
                )
        else:
            self.model = ids[0] if ids else ""
        meta = next((m for m in self.models if m.get("id") == self.model), {})
        ctx = meta.get("max_model_len") or meta.get("context_length") or DEFAULT_CONTEXT
        self.info = EngineInfo(
            spec=f"openai:{redact_url(url.strip())}",
            source=self._shown,
            backend="openai",
            device="remote",
            dtype="n/a",
            context_length=int(ctx),
            architecture=self.model,
        )

    # -- Engine protocol ---------------------------------------------------------------

    def count_tokens(self, text: str) -> int:
        """The server's own count when it has a tokenize endpoint, else len/3.5 (estimate)."""
        if text in self._count_cache:
            return self._count_cache[text]
        if self._tokenize is None:
            self._tokenize = self._probe_tokenize()
        n = None
        if self._tokenize:
            try:
                n = self._remote_count(self._tokenize, text)
            except (GenerationError, httpx.HTTPError, ValueError, KeyError, TypeError) as e:
                log.warning("tokenize endpoint failed (%s); estimating token counts", e)
                self._tokenize = ""
        if n is None:
            n = max(0, round(len(text) / CHARS_PER_TOKEN)) if text else 0
        if len(self._count_cache) > 512:
            self._count_cache.clear()
        self._count_cache[text] = n
        return n

    @property
    def tokenize_endpoint(self) -> str:
        """Which tokenize API counts tokens ('' = estimate); probes the server once."""
        if self._tokenize is None:
            self._tokenize = self._probe_tokenize()
        return self._tokenize

    def generate(
        self, request: GenerationRequest, should_stop: Callable[[], bool] | None = None
    ) -> Generation:
        t0 = time.perf_counter()
        heal = bool(request.forced_prefix)
        try:
            choices = self._stream(request, 1, should_stop, heal=heal)
        except _Diverged:
            choices = None
        if choices is None or choices[0].diverged:
            choices = self._stream(request, 1, should_stop, heal=False)
        return self._result(choices[0], request, t0)

    def generate_n(
        self,
        request: GenerationRequest,
        n: int,
        should_stop: Callable[[], bool] | None = None,
    ) -> list[Generation]:
        """``n`` candidates for one prompt, with the API's ``n`` in one request.

        Servers that ignore ``n`` (llama-cpp-python does) or choices whose text does not
        start with the forced prefix are topped up with single requests (seed + i).
        """
        t0 = time.perf_counter()
        n = max(1, int(n))
        got = self._stream(request, n, should_stop, heal=bool(request.forced_prefix))
        out = [self._result(c, request, t0) for c in got if not c.diverged]
        i = 0
        while len(out) < n:
            if should_stop is not None and should_stop():
                break
            i += 1
            seed = None if request.seed is None else request.seed + i
            one = _replace(request, seed=seed)
            out.append(self.generate(one, should_stop))
        return out[:n]

    def close(self) -> None:
        self._client.close()

    # -- requests ----------------------------------------------------------------------

    def _payload(self, request: GenerationRequest, n: int, heal: bool) -> dict[str, Any]:
        prompt = request.prompt if heal else request.prompt + request.forced_prefix
        body: dict[str, Any] = {
            **self._extra_body,
            "prompt": prompt,
            "max_tokens": max(1, int(request.max_new_tokens)),
            "temperature": float(request.temperature),
            "top_p": float(request.top_p),
            "stream": True,
        }
        if self.model:
            body["model"] = self.model
        if n > 1:
            body["n"] = n
        if request.seed is not None:
            body["seed"] = int(request.seed)
        # Server-side stop saves the server's time; the same strings are applied here too
        # (to the forced prefix + text, and across chunk boundaries).
        stops = [s for s in request.stop if s]
        if stops:
            body["stop"] = stops
        return body

    def _stream(
        self,
        request: GenerationRequest,
        n: int,
        should_stop: Callable[[], bool] | None,
        *,
        heal: bool,
    ) -> list[_Choice]:
        """Run one streaming request; return the choices (index order)."""
        body = self._payload(request, n, heal)
        prefix = request.forced_prefix
        choices: dict[int, _Choice] = {}
        t0 = time.perf_counter()
        ended = False  # [DONE] seen, or we ended the stream ourselves
        with self._client.open_stream(body, should_stop) as resp:
            if resp is None:  # cancelled while waiting to retry
                return [_Choice(finish="cancelled")]
            for obj in self._client.events(resp):
                if obj is None:
                    ended = True
                    break
                for ch in obj.get("choices") or []:
                    idx = int(ch.get("index", 0))
                    c = choices.setdefault(idx, _Choice(text="" if heal else prefix))
                    if c.finish is not None or c.diverged:
                        continue
                    piece = ch.get("text") or ""
                    if piece:
                        if c.first_token_s is None:
                            c.first_token_s = time.perf_counter() - t0
                        c.text += piece
                        c.chunks += 1
                    if heal and not _agrees(c.text, prefix):
                        c.diverged = True
                        continue
                    self._check_stops(c, request, prefix if heal else "")
                    if ch.get("finish_reason") and c.finish is None:
                        c.server_finish = ch["finish_reason"]
                        # vLLM says which stop ended it (None: end-of-text); others don't.
                        if "stop_reason" in ch:
                            c.extra["stop_reason"] = ch["stop_reason"]
                usage = obj.get("usage")
                if isinstance(usage, dict) and usage.get("completion_tokens") is not None:
                    for c in choices.values():
                        c.usage_tokens = int(usage["completion_tokens"])
                done = [c for c in choices.values() if c.finish or c.diverged or c.server_finish]
                if len(choices) >= n and len(done) == len(choices):
                    ended = True
                    break  # closing the stream now stops the server
                if heal and n == 1 and choices.get(0, _Choice()).diverged:
                    raise _Diverged
                if should_stop is not None and should_stop():
                    for c in choices.values():
                        if c.finish is None and c.server_finish is None:
                            c.finish = "cancelled"
                    ended = True
                    break
        if not ended and not any(c.server_finish for c in choices.values()):
            raise GenerationError(self._broken_stream(body))
        if not choices:
            choices[0] = _Choice(text="" if heal else prefix, server_finish="stop")
        for c in choices.values():
            if (
                heal
                and not c.diverged
                and c.finish != "cancelled"
                and not c.text.startswith(prefix)
            ):
                c.diverged = True  # stream ended inside the prefix
        return [choices[i] for i in sorted(choices)]

    def _broken_stream(self, body: dict[str, Any]) -> str:
        """Why a stream ended without [DONE]: llama-cpp-python, for one, fails after the
        200 header (a prompt over its context). The same request without streaming, one
        token long, gets the server's own error message."""
        msg = f"the model server at {self._shown} ended the stream without finishing"
        try:
            resp = self._client.send(
                "POST", "/completions", json={**body, "stream": False, "max_tokens": 1}
            )
            resp.close()
        except GenerationError as e:
            return f"{msg}: {e}"
        except Cancelled:
            pass
        return f"{msg} (it may have crashed; see its log)"

    def _check_stops(self, c: _Choice, request: GenerationRequest, need_prefix: str) -> None:
        if need_prefix and len(c.text) < len(need_prefix):
            return  # still inside the forced prefix
        end = stop_at(c.text, request)
        if end is not None:
            c.text, c.finish = end

    def _result(self, c: _Choice, request: GenerationRequest, t0: float) -> Generation:
        total = (time.perf_counter() - t0) * 1000
        if c.finish is not None:
            reason = c.finish
        elif c.server_finish == "length":
            reason = "length"
        elif c.server_finish == "stop":
            # The server stopped at one of our stop strings (and cut it off) or at
            # end-of-text. vLLM's stop_reason tells them apart; llama.cpp's server does
            # not, so with stop strings given its "stop" is reported as "stop".
            if "stop_reason" in c.extra:
                reason = "stop" if isinstance(c.extra["stop_reason"], str) else "eos"
            else:
                reason = "stop" if any(request.stop) else "eos"
        else:
            # A stream that ended without a finish reason was cut short by the server
            # (llama-cpp-python interrupts it when another request waits): the body may
            # be incomplete, as after max_new_tokens.
            reason = "length"
        first = (c.first_token_s or 0.0) * 1000
        return Generation(
            text=c.text,
            finish_reason=reason,  # type: ignore[arg-type]
            prompt_tokens=round(len(request.prompt) / CHARS_PER_TOKEN),
            new_tokens=c.usage_tokens if c.usage_tokens is not None else c.chunks,
            prefill_ms=first,
            decode_ms=max(0.0, total - first),
            total_ms=total,
        )

    def _list_models(self) -> list[dict[str, Any]]:
        obj = self._client.get_json("/models")
        data = obj.get("data") if isinstance(obj, dict) else None
        if not isinstance(data, list):
            raise GenerationError(
                f"the model server at {self._shown} answered /v1/models without a model "
                "list; is it an OpenAI-compatible server?"
            )
        return [m for m in data if isinstance(m, dict)]

    def _probe_tokenize(self) -> str:
        for kind in ("llama-cpp-python", "vllm", "llama.cpp"):
            try:
                if self._remote_count(kind, "def f():") > 0:
                    return kind
            except (GenerationError, httpx.HTTPError, ValueError, KeyError, TypeError):
                continue
        log.info("the model server has no tokenize endpoint; estimating tokens as chars/3.5")
        return ""

    def _remote_count(self, kind: str, text: str) -> int:
        if kind == "llama-cpp-python":
            obj = self._client.get_json("/extras/tokenize/count", root=True, json={"input": text})
            return int(obj["count"])
        if kind == "vllm":
            body = {"prompt": text, **({"model": self.model} if self.model else {})}
            obj = self._client.get_json("/tokenize", root=True, json=body)
            return int(obj["count"])
        obj = self._client.get_json("/tokenize", root=True, json={"content": text})
        return len(obj["tokens"])


def _agrees(text: str, prefix: str) -> bool:
    """True while ``text`` can still become / already is a continuation of ``prefix``."""
    n = min(len(text), len(prefix))
    return text[:n] == prefix[:n]


def _replace(request: GenerationRequest, **changes: Any) -> GenerationRequest:
    import dataclasses

    return dataclasses.replace(request, **changes)
