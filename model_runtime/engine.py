"""The local engine: our own prefill/decode loop over a transformers causal LM.

``generate()`` is not used in the hot path: a loop of our own lets us reuse the KV
cache across requests (typing extends the prompt), poll for cancellation between
tokens, run the stop callback on every token, and constrain the first tokens to a
forced prefix. Greedy output equals ``model.generate(do_sample=False)`` (a test).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

from model_runtime.kv_cache import PrefixCache
from model_runtime.sampling import TextDecoder, TokenTable, sample
from model_runtime.speculation import Drafting, NgramIndex, SpecCost
from model_runtime.threads import is_small, pick_threads, torch_threads
from model_runtime.types import (
    EngineInfo,
    Generation,
    GenerationError,
    GenerationRequest,
    first_stop,
)

log = logging.getLogger(__name__)

# --- the model, as three small pure functions ---------------------------------------


def prefill(model: Any, ids: Sequence[int], kv: Any) -> torch.Tensor:
    """Append ``ids`` to the cache ``kv``; returns the logits after the last one: [V]."""
    x = torch.tensor([list(ids)], dtype=torch.long, device=model.device)  # [1, T]
    out = model(input_ids=x, cache=kv, use_cache=True, logits_to_keep=1)
    return out.logits[0, -1]  # [V]


def decode_one(
    model: Any, tok: int, kv: Any, step: Callable[..., Any] | None = None
) -> torch.Tensor:
    """Append one token; returns the logits after it: [V]. ``step`` is the model's
    forward, compiled (CUDA graphs) when the engine has one."""
    x = torch.tensor([[tok]], dtype=torch.long, device=model.device)  # [1, 1]
    out = (step or model)(input_ids=x, cache=kv, use_cache=True, logits_to_keep=1)
    # A CUDA graph's output buffer is overwritten by the next replay: keep our own copy.
    return out.logits[0, -1].clone()  # [V]


def forward_all(model: Any, ids: Sequence[int], kv: Any) -> torch.Tensor:
    """Append ``ids``; returns the logits after each of them: [T, V] (for verifying drafts)."""
    x = torch.tensor([list(ids)], dtype=torch.long, device=model.device)  # [1, T]
    out = model(input_ids=x, cache=kv, use_cache=True)
    return out.logits[0]  # [T, V]


# --- the engine ---------------------------------------------------------------------


class LocalEngine:
    """Implements the ``Engine`` protocol for a transformers causal LM (Phi-1 and co.).

    Keeps the KV cache of the previous request and reuses its longest common token
    prefix with the next prompt. Not thread-safe: one Worker thread owns it.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        info: EngineInfo,
        *,
        speculative: bool = True,
        draft_tokens: int = 8,
        threads: int | None = None,
        cuda_graphs: bool | None = None,
        compiled_decode: bool | None = None,
    ) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.info = info
        # Prompt-lookup drafts for greedy requests; adaptive (Drafting), so a model that
        # rejects them pays for a few verify passes only. Output is identical either way.
        self.speculative = speculative
        self.draft_tokens = draft_tokens
        self.threads = pick_threads(model, threads)
        vocab = int(model.get_output_embeddings().weight.shape[0])
        self._table = TokenTable(tokenizer, vocab)
        # CUDA: decode steps run as one captured graph over a static cache (gpt-fast's
        # recipe); prefill and draft verification keep the eager forward (their shapes
        # vary). Off on CPU, where launch overhead is not the bottleneck.
        on_cuda = getattr(getattr(model, "device", None), "type", "cpu") == "cuda"
        if cuda_graphs is None:
            cuda_graphs = on_cuda and os.environ.get("PHI_LSP_CUDA_GRAPHS", "1") != "0"
        self.cuda_graphs = bool(cuda_graphs)
        self._step: Callable[..., Any] | None = None
        if self.cuda_graphs:
            self._step = torch.compile(model.forward, mode="reduce-overhead", fullgraph=True)
        self._cache = PrefixCache(
            model.config, capacity=int(info.context_length), static=self.cuda_graphs
        )
        self._eos = _eos_ids(model, tokenizer)
        self._ahead: list[tuple[int, torch.Tensor]] = []  # verified-later drafts in the cache
        self._drafting = Drafting(draft_tokens)
        self.spec_cost = SpecCost()
        self._sync = torch.cuda.synchronize if on_cuda else None  # for honest step timings
        # The last request's generated ids and figures (tests and the bench read them).
        self.last_tokens: list[int] = []
        self.last_stats: dict[str, int] = {}
        # CPU: the one-token decode step compiled by inductor, in the background while
        # the eager loop serves (status: fast_path). Default on for models that are not
        # small; PHI_LSP_COMPILE=0/1 overrides.
        self.fast_path = "cuda-graphs" if self.cuda_graphs else "off"
        self.fast_path_error = ""
        self.compile_s: float | None = None
        self.step_ms: dict[str, float] = {}  # one decode step, eager vs compiled
        self.compiled_step: Callable[..., Any] | None = None  # checked, used if faster
        self._compiled: Callable[..., Any] | None = None
        self._compile_done = threading.Event()
        if compiled_decode is None:
            env = os.environ.get("PHI_LSP_COMPILE", "").strip()
            compiled_decode = (
                env == "1" if env in ("0", "1") else (not on_cuda and not is_small(model))
            )
        if compiled_decode and not self.cuda_graphs:
            self._compile_in_background()
        else:
            self._compile_done.set()
        if self.cuda_graphs:
            self._capture()

    # -- the compiled CPU decode step --

    def _compile_in_background(self) -> None:
        self.fast_path = "compiling"
        threading.Thread(target=self._compile, name="phi-lsp-compile", daemon=True).start()

    def _compile(self) -> None:
        """Compile the decode step (inductor; sizes dynamic, so one graph serves every
        cache length) and check it against the eager step; only then does ``generate``
        switch to it, and only if it is faster (``step_ms``: eager vs compiled, timed
        alternately). A failure leaves the eager loop in place, with a warning."""
        t0 = time.perf_counter()
        try:
            step = torch.compile(self.model.forward, dynamic=True)
            with torch.inference_mode():
                eager, compiled = self._check_tokens(None), self._check_tokens(step)
                if eager != compiled:
                    raise RuntimeError(f"greedy tokens differ from eager: {compiled} vs {eager}")
                self.step_ms = self._time_steps(step)
            self.compiled_step = step
            if self.step_ms["compiled"] > 0.95 * self.step_ms["eager"]:
                self.fast_path = "not faster"
                log.info(
                    "compiled decode not faster than eager (%s); decoding eagerly", self.step_ms
                )
                return
            self._compiled = step
            self.fast_path = "ready"
        except Exception as e:  # noqa: BLE001 - compilation is an optimisation, never a failure
            self.fast_path = "failed"
            self.fast_path_error = f"{type(e).__name__}: {str(e)[:300]}"
            log.warning("compiled decode unavailable (%s); decoding eagerly", self.fast_path_error)
        finally:
            self.compile_s = round(time.perf_counter() - t0, 2)
            self._compile_done.set()

    def _check_tokens(self, step: Callable[..., Any] | None, n: int = 8) -> list[int]:
        """Greedy tokens after a fixed prompt, on a scratch cache (the engine's own may be
        in use by a request meanwhile): twice, so a second length runs the same graph."""
        ids = self._encode("def add(a, b):\n    return a + b\n\n\ndef scale(x, k):\n") or [0]
        cache = PrefixCache(self.model.config, capacity=len(ids) + n + 1)
        cache.reuse(ids)
        logits = prefill(self.model, ids, cache.kv)
        out: list[int] = []
        for _ in range(n):
            out.append(int(logits.argmax()))
            logits = decode_one(self.model, out[-1], cache.kv, step)
        return out

    def _time_steps(self, step: Callable[..., Any], rounds: int = 5) -> dict[str, float]:
        """Median ms of one decode step, eager and compiled, alternated (a busy machine
        drifts)."""
        ids = self._encode("def add(a, b):\n    return a + b\n") or [0]
        cache = PrefixCache(self.model.config, capacity=len(ids) + 2 * rounds + 1)
        cache.reuse(ids)
        prefill(self.model, ids, cache.kv)
        times: dict[str, list[float]] = {"eager": [], "compiled": []}
        for _ in range(rounds):
            for name, fn in (("eager", None), ("compiled", step)):
                t0 = time.perf_counter()
                decode_one(self.model, ids[-1], cache.kv, fn)
                times[name].append((time.perf_counter() - t0) * 1000)
        return {k: round(sorted(v)[len(v) // 2], 2) for k, v in times.items()}

    def use_compiled_step(self) -> bool:
        """Decode through the compiled step even where it did not measure faster
        (benchmarks compare both); False when there is none (failed, off)."""
        if self.compiled_step is None:
            return False
        self._compiled = self.compiled_step
        return True

    def wait_fast_path(self, timeout: float | None = None) -> str:
        """Block until the background compilation ended (benchmarks, tests); returns
        ``fast_path``."""
        self._compile_done.wait(timeout)
        return self.fast_path

    def status(self) -> dict[str, Any]:
        """What the engine runs now (``model info``, the server's status)."""
        return {
            "dtype": self.info.dtype,
            "device": self.info.device,
            "threads": self.threads,
            # off | compiling | ready | not faster | failed | cuda-graphs
            "fast_path": self.fast_path,
            "compile_s": self.compile_s,
            "step_ms": self.step_ms,
            **({"fast_path_error": self.fast_path_error} if self.fast_path_error else {}),
        }

    def _capture(self) -> None:
        """Compile and capture the decode step now (while loading), not on the first
        request; if that fails (no Triton, an unsupported GPU), decode eagerly."""
        try:
            for _ in range(2):  # the first call compiles, the next ones record and replay
                self.generate(GenerationRequest(prompt="def f(x):\n", max_new_tokens=4))
        except Exception as e:  # noqa: BLE001 - graphs are an optimisation, never a failure
            log.warning(
                "CUDA graph decode unavailable (%s: %s); decoding eagerly", type(e).__name__, e
            )
            self._step = None
            self.cuda_graphs = False
            self._cache = PrefixCache(self.model.config, capacity=int(self.info.context_length))
        self.reset_cache()
        self.spec_cost = SpecCost()  # compile time is no measure of a decode step

    # -- Engine protocol --

    def count_tokens(self, text: str) -> int:
        return len(self._encode(text))

    def close(self) -> None:
        self.reset_cache(release=True)

    def reset_cache(self, release: bool = False) -> None:
        """Forget the cached prefix (the next request is cold); ``release`` also gives
        the cache's memory back."""
        if release:
            self._cache.drop()
        else:
            self._cache.clear()
        self._ahead = []

    @property
    def cached_tokens(self) -> int:
        return len(self._cache)

    def generate(
        self, request: GenerationRequest, should_stop: Callable[[], bool] | None = None
    ) -> Generation:
        t0 = time.perf_counter()
        try:
            with torch.inference_mode(), torch_threads(self.threads):
                return self._generate(request, should_stop, t0)
        except BaseException:
            # A half-written cache (OOM in the middle of a forward) must not be reused,
            # and its memory is what an out-of-memory error needs back.
            self.reset_cache(release=True)
            raise

    # -- the loop --

    def _encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def _generate(
        self, req: GenerationRequest, should_stop: Callable[[], bool] | None, t0: float
    ) -> Generation:
        if req.max_new_tokens < 1:
            raise GenerationError(f"max_new_tokens must be at least 1, got {req.max_new_tokens}")
        ctx = int(self.info.context_length)
        ids = self._encode(req.prompt)
        if not ids:
            start = self.tokenizer.bos_token_id
            if start is None:
                start = next(iter(self._eos), None)
            if start is None:
                raise GenerationError("the prompt is empty and the tokenizer has no start token")
            ids = [int(start)]
        # Safety net (the pipeline budgets too): keep the end of an overlong prompt.
        budget = max(1, ctx - req.max_new_tokens)
        if len(ids) > budget:
            ids = ids[-budget:]

        self._ahead = []
        if self._compiled is not None and self._step is None:
            self._step = self._compiled  # the background compilation finished: use it
        reused = self._cache.reuse(ids)
        logits = prefill(self.model, ids[reused:], self._cache.kv)  # [V]
        self._cache.extend(ids[reused:])
        t_prefill = time.perf_counter()

        gen_ids: list[int] = []
        decoder = TextDecoder(self._table, self.tokenizer)
        forced = req.forced_prefix.encode("utf-8")
        generator = _generator(req.seed, logits.device) if req.temperature > 0 else None
        stops = tuple(s for s in req.stop if s)
        longest_stop = max((len(s) for s in stops), default=0)
        speculate = self.speculative and req.temperature <= 0
        self._drafting = Drafting(self.draft_tokens)
        index = NgramIndex(ids) if speculate else None
        stats = {"drafted": 0, "accepted": 0, "forwards": 1}
        text = ""
        reason = "length"
        while True:
            if should_stop is not None and should_stop():
                reason = "cancelled"
                break
            if len(gen_ids) >= req.max_new_tokens or len(ids) + len(gen_ids) >= ctx:
                reason = "length"
                break
            tok = self._choose(logits, req, forced, generator)
            gen_ids.append(tok)
            if index is not None:
                index.append(tok)
            if forced:
                b = self._table.bytes_of[tok] or b""
                forced = forced[len(b) :] if forced.startswith(b) else b""
            elif tok in self._eos:
                reason = "eos"
                break
            before = len(text)
            text = decoder.push(tok)
            if stops:
                cut = first_stop(text, stops, max(0, before - longest_stop + 1))
                if cut is not None:
                    text, reason = text[:cut], "stop"
                    break
            if req.stop_fn is not None and req.stop_fn(text):
                reason = "stop_fn"
                break
            logits = self._advance(tok, gen_ids, index if not forced else None, req, stats)

        if reason != "stop":  # a stop cut already ended the text inside it
            text = decoder.finish()
        t_end = time.perf_counter()
        self.last_stats = stats
        self.last_tokens = gen_ids
        return Generation(
            text=text,
            finish_reason=reason,  # type: ignore[arg-type]
            prompt_tokens=len(ids),
            reused_tokens=reused,
            new_tokens=len(gen_ids),
            prefill_ms=(t_prefill - t0) * 1000,
            decode_ms=(t_end - t_prefill) * 1000,
            total_ms=(t_end - t0) * 1000,
        )

    def _choose(
        self,
        logits: torch.Tensor,
        req: GenerationRequest,
        forced: bytes,
        generator: torch.Generator | None,
    ) -> int:
        if forced:
            allowed = self._table.allowed_for(forced).to(logits.device)
            if not bool(allowed.any()):
                raise GenerationError(
                    f"no token can spell the forced prefix {forced.decode(errors='replace')!r}"
                )
            logits = logits.masked_fill(~allowed, float("-inf"))
        return sample(logits, req.temperature, req.top_p, generator)

    def _advance(
        self,
        tok: int,
        gen_ids: list[int],
        index: NgramIndex | None,
        req: GenerationRequest,
        stats: dict[str, int],
    ) -> torch.Tensor:
        """Feed ``tok`` (the last of ``gen_ids``); returns the logits after it: [V].

        With speculation the cache may already hold drafted tokens after the last fed
        one (``self._ahead``: draft id and the logits after it). A draft equal to
        ``tok`` costs nothing; the first one that differs drops the rest from the cache.
        """
        spec = self._drafting
        if self._ahead:
            draft, row = self._ahead[0]
            if draft == tok:
                self._ahead.pop(0)
                stats["accepted"] += 1
                spec.accepted += 1
                if not self._ahead:
                    self.spec_cost.observe_gain(1 + spec.accepted)
                    spec.settle()
                return row
            self._cache.crop_to(len(self._cache) - len(self._ahead))
            self._ahead = []
            self.spec_cost.observe_gain(1 + spec.accepted)
            spec.settle()
        kv = self._cache.kv
        stats["forwards"] += 1
        t0 = time.perf_counter()
        if index is not None and spec.wants_draft() and self.spec_cost.worth_it():
            room = min(
                spec.k,
                req.max_new_tokens - len(gen_ids) - 1,
                int(self.info.context_length) - len(self._cache) - 2,
            )
            drafts = index.draft(room) if room > 0 else []
            if drafts:
                rows = forward_all(self.model, [tok, *drafts], kv)  # [1 + k, V]
                self.spec_cost.observe_verify(self._elapsed_ms(t0))
                self._cache.extend([tok, *drafts])
                stats["drafted"] += len(drafts)
                spec.start(len(drafts))
                self._ahead = list(zip(drafts, rows[1:], strict=True))
                return rows[0]
        logits = decode_one(self.model, tok, kv, self._step)
        self.spec_cost.observe_single(self._elapsed_ms(t0))
        self._cache.extend([tok])
        return logits

    def _elapsed_ms(self, t0: float) -> float:
        if self._sync is not None:
            self._sync()  # the next token's .item() waits for the device anyway
        return (time.perf_counter() - t0) * 1000


def _eos_ids(model: Any, tokenizer: Any) -> frozenset[int]:
    found: set[int] = set()
    for v in (
        getattr(tokenizer, "eos_token_id", None),
        getattr(getattr(model, "generation_config", None), "eos_token_id", None),
    ):
        if isinstance(v, int):
            found.add(v)
        elif isinstance(v, (list, tuple)):
            found.update(int(x) for x in v)
    return frozenset(found)


def _generator(seed: int | None, device: torch.device) -> torch.Generator:
    g = torch.Generator(device=device)
    if seed is None:
        g.seed()
    else:
        g.manual_seed(seed)
    return g
