"""The local engine: our decode loop against transformers' own ``generate``."""

from __future__ import annotations

import inspect
import json
from collections.abc import Sequence

import pytest
import torch

from model_runtime.engine import LocalEngine
from model_runtime.kv_cache import BufferCache, PrefixCache, common_prefix_len
from model_runtime.sampling import TextDecoder, TokenTable, top_p_filter
from model_runtime.speculation import Drafting, NgramIndex, SpecCost
from model_runtime.threads import torch_threads
from model_runtime.types import EngineInfo, GenerationError, GenerationRequest

CODE = inspect.getsource(json)  # real Python text for prompts


def lookup_draft(
    context: Sequence[int], k: int, max_ngram: int = 3, min_ngram: int = 1
) -> list[int]:
    """The plain scan of the whole context that ``NgramIndex.draft`` must agree with
    (the index exists only to make it cheap)."""
    n_ctx = len(context)
    for n in range(min(max_ngram, n_ctx - 1), min_ngram - 1, -1):
        tail = list(context[n_ctx - n :])
        best: list[int] = []
        for start in range(n_ctx - n - 1, -1, -1):
            if context[start] == tail[0] and list(context[start : start + n]) == tail:
                follow = list(context[start + n : start + n + k])
                if len(follow) > len(best):
                    best = follow
                if len(best) == k:
                    break
        if best:
            return best
    return []


@pytest.fixture(scope="module")
def small() -> tuple[object, object]:
    """A 2-layer PhiForCausalLM with random weights and a byte-level BPE trained here."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PhiConfig, PhiForCausalLM, PreTrainedTokenizerFast

    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tk.train_from_iterator([CODE], trainer)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk, eos_token="<|endoftext|>", bos_token="<|endoftext|>"
    )
    torch.manual_seed(0)
    eos = tok.eos_token_id
    cfg = PhiConfig(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=512,
        partial_rotary_factor=0.5,
        eos_token_id=eos,
        bos_token_id=eos,
        pad_token_id=eos,
    )
    return PhiForCausalLM(cfg).eval(), tok


def make_engine(model_tok: tuple[object, object], **kw: object) -> LocalEngine:
    model, tok = model_tok
    info = EngineInfo(spec="test", source="test", backend="local", context_length=512)
    return LocalEngine(model, tok, info, **kw)  # type: ignore[arg-type]


def reference(model_tok: tuple[object, object], prompt: str, n: int) -> tuple[list[int], str]:
    model, tok = model_tok
    ids = tok.encode(prompt, add_special_tokens=False)  # type: ignore[attr-defined]
    # The engine decodes this small model on one thread; the reference must too, or the
    # two may round differently and part ways at a near-tie.
    with torch_threads(1):
        out = model.generate(  # type: ignore[attr-defined]
            torch.tensor([ids]),
            max_new_tokens=n,
            do_sample=False,
            attention_mask=torch.ones(1, len(ids), dtype=torch.long),
        )
    new = out[0, len(ids) :].tolist()
    return new, tok.decode(new, skip_special_tokens=True)  # type: ignore[attr-defined]


# --- greedy equality with model.generate --------------------------------------------


def test_greedy_cold_equals_generate(small: tuple[object, object]) -> None:
    eng = make_engine(small)
    prompt = CODE[:700]
    ids, text = reference(small, prompt, 24)
    g = eng.generate(GenerationRequest(prompt=prompt, max_new_tokens=24))
    assert g.text == text
    assert g.new_tokens == len(ids)
    assert g.reused_tokens == 0


def test_greedy_warm_after_typing_equals_generate_and_reuses_prefix(
    small: tuple[object, object],
) -> None:
    eng = make_engine(small)
    prompt = CODE[:700]
    first = eng.generate(GenerationRequest(prompt=prompt, max_new_tokens=8))
    # The user types a few characters: the prompt grows at the end.
    typed = prompt + "    def f(x"
    ids, text = reference(small, typed, 24)
    g = eng.generate(GenerationRequest(prompt=typed, max_new_tokens=24))
    assert g.text == text
    assert g.reused_tokens >= first.prompt_tokens - 2
    # Editing back (deleting the typed text) crops the cache instead of starting cold.
    _, text_back = reference(small, prompt, 24)
    back = eng.generate(GenerationRequest(prompt=prompt, max_new_tokens=24))
    assert back.text == text_back
    assert back.reused_tokens == back.prompt_tokens - 1


def test_same_prompt_twice_recomputes_one_token(small: tuple[object, object]) -> None:
    eng = make_engine(small)
    a = eng.generate(GenerationRequest(prompt=CODE[:300], max_new_tokens=5))
    b = eng.generate(GenerationRequest(prompt=CODE[:300], max_new_tokens=5))
    assert b.text == a.text
    assert b.reused_tokens == a.prompt_tokens - 1


# --- the cache ----------------------------------------------------------------------


def test_dynamic_cache_crop_semantics_we_rely_on(small: tuple[object, object]) -> None:
    """transformers 5.23: crop(n > 0) raises; crop(-k) drops the last k positions."""
    from transformers import DynamicCache

    model, tok = small
    kv = DynamicCache(config=model.config)  # type: ignore[attr-defined]
    ids = torch.tensor([tok.encode(CODE[:200])])  # type: ignore[attr-defined]
    with torch.inference_mode():
        model(input_ids=ids, cache=kv, use_cache=True)  # type: ignore[operator]
    n = ids.shape[1]
    assert kv.get_seq_length() == n
    with pytest.raises(ValueError):
        kv.crop(5)
    kv.crop(-3)
    assert kv.get_seq_length() == n - 3


def test_buffer_cache_crops_like_dynamic_cache_and_decodes_the_same(
    small: tuple[object, object],
) -> None:
    from transformers import DynamicCache

    model, tok = small
    ids = torch.tensor([tok.encode(CODE[:300])])  # type: ignore[attr-defined]
    n = ids.shape[1]
    dyn = DynamicCache(config=model.config)  # type: ignore[attr-defined]
    buf = BufferCache(model.config.num_hidden_layers, capacity=16)  # type: ignore[attr-defined]
    with torch.inference_mode():
        for kv in (dyn, buf):  # the buffer grows past its capacity of 16
            model(input_ids=ids, cache=kv, use_cache=True)  # type: ignore[operator]
            kv.crop(-7)
            assert kv.get_seq_length() == n - 7
        with pytest.raises(ValueError):
            buf.crop(3)
        nxt = ids[:, n - 7 : n - 4]
        a = model(input_ids=nxt, cache=dyn, use_cache=True).logits  # type: ignore[operator]
        b = model(input_ids=nxt, cache=buf, use_cache=True).logits  # type: ignore[operator]
    assert torch.allclose(a, b, atol=1e-5)
    assert buf.get_seq_length() == n - 4


def test_prefix_cache_keeps_common_prefix_and_one_token_to_recompute(
    small: tuple[object, object],
) -> None:
    model, _ = small
    pc = PrefixCache(model.config)  # type: ignore[attr-defined]
    assert pc.reuse([1, 2, 3]) == 0
    with torch.inference_mode():
        model(input_ids=torch.tensor([[1, 2, 3, 4]]), cache=pc.kv, use_cache=True)  # type: ignore[operator]
    pc.extend([1, 2, 3, 4])
    assert pc.reuse([1, 2, 9, 9]) == 2 and pc.kv.get_seq_length() == 2
    pc.extend([])  # consistent: nothing appended
    assert pc.reuse([1, 2]) == 1 and pc.kv.get_seq_length() == 1
    assert pc.reuse([7, 8]) == 0 and pc.kv.get_seq_length() == 0
    assert common_prefix_len([1, 2, 3], [1, 2, 4]) == 2


def test_cache_mismatch_is_never_kept(small: tuple[object, object]) -> None:
    model, _ = small
    pc = PrefixCache(model.config)  # type: ignore[attr-defined]
    pc.reuse([1])
    with pytest.raises(RuntimeError, match="KV cache holds 0 positions"):
        pc.extend([1, 2])
    assert len(pc) == 0 and pc.kv is None


def test_overlong_prompt_keeps_its_end(small: tuple[object, object]) -> None:
    eng = make_engine(small)
    long_prompt = CODE[:6000]
    assert eng.count_tokens(long_prompt) > 512
    g = eng.generate(GenerationRequest(prompt=long_prompt, max_new_tokens=16))
    assert g.prompt_tokens == 512 - 16
    assert g.new_tokens == 16


# --- forced prefix, stops, cancellation ---------------------------------------------


def test_forced_prefix_after_docstring_starts_the_body(small: tuple[object, object]) -> None:
    eng = make_engine(small)
    prompt = 'def add(a, b):\n    """Return the sum."""'
    g = eng.generate(GenerationRequest(prompt=prompt, forced_prefix="\n    ", max_new_tokens=12))
    assert g.text.startswith("\n    ")
    # Also when sampling: the constraint holds for every candidate.
    for seed in range(3):
        s = eng.generate(
            GenerationRequest(
                prompt=prompt, forced_prefix="\n    ", max_new_tokens=6, temperature=1.0, seed=seed
            )
        )
        assert s.text.startswith("\n    ")


def test_forced_prefix_longer_than_one_token(small: tuple[object, object]) -> None:
    eng = make_engine(small)
    g = eng.generate(
        GenerationRequest(prompt="x = 1\n", forced_prefix="return self._value", max_new_tokens=20)
    )
    assert g.text.startswith("return self._value")


def test_stop_string_cuts_before_it(small: tuple[object, object]) -> None:
    eng = make_engine(small)
    prompt = CODE[:700]
    _, full = reference(small, prompt, 30)
    stop = full[5:8]
    assert stop.strip(), "the reference text should have a visible stop candidate"
    g = eng.generate(GenerationRequest(prompt=prompt, max_new_tokens=30, stop=(stop,)))
    assert g.finish_reason == "stop"
    assert g.text == full[: full.index(stop)]


def test_stop_fn_is_called_after_every_token(small: tuple[object, object]) -> None:
    eng = make_engine(small)
    seen: list[str] = []

    def stop_fn(text: str) -> bool:
        seen.append(text)
        return len(seen) == 4

    g = eng.generate(GenerationRequest(prompt=CODE[:300], max_new_tokens=30, stop_fn=stop_fn))
    assert g.finish_reason == "stop_fn"
    assert g.new_tokens == 4 and len(seen) == 4
    assert g.text == seen[-1]


def test_should_stop_cancels_between_tokens(small: tuple[object, object]) -> None:
    eng = make_engine(small)
    calls = 0

    def should_stop() -> bool:
        nonlocal calls
        calls += 1
        return calls > 3

    g = eng.generate(GenerationRequest(prompt=CODE[:300], max_new_tokens=30), should_stop)
    assert g.finish_reason == "cancelled"
    assert g.new_tokens == 3


def test_eos_ends_generation(small: tuple[object, object]) -> None:
    model, tok = small
    eng = make_engine(small)
    eos = tok.eos_token_id  # type: ignore[attr-defined]
    # Make end-of-text the best next token everywhere by biasing the output layer.
    head = model.get_output_embeddings()  # type: ignore[attr-defined]
    saved = head.bias.detach().clone()
    try:
        with torch.no_grad():
            head.bias[eos] += 1e4
        g = eng.generate(GenerationRequest(prompt="x = 1", max_new_tokens=10))
        assert (g.finish_reason, g.text, g.new_tokens) == ("eos", "", 1)
        # A forced prefix is still produced first: eos is not allowed while forcing.
        f = eng.generate(GenerationRequest(prompt="x = 1", forced_prefix="\n", max_new_tokens=10))
        assert f.finish_reason == "eos" and f.text.startswith("\n")
        assert f.new_tokens == 2  # one forced token (it may spell more than "\n"), then eos
    finally:
        with torch.no_grad():
            head.bias.copy_(saved)


def test_sampling_is_repeatable_with_a_seed(small: tuple[object, object]) -> None:
    eng = make_engine(small)
    req = GenerationRequest(
        prompt=CODE[:300], max_new_tokens=12, temperature=0.9, top_p=0.9, seed=7
    )
    a, b = eng.generate(req), eng.generate(req)
    assert a.text == b.text
    others = {
        eng.generate(
            GenerationRequest(prompt=CODE[:300], max_new_tokens=12, temperature=1.5, seed=s)
        ).text
        for s in range(4)
    }
    assert len(others) > 1


def test_top_p_keeps_the_smallest_set_reaching_p() -> None:
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05])
    out = top_p_filter(probs, 0.7)
    assert out.tolist() == pytest.approx([0.5 / 0.8, 0.3 / 0.8, 0.0, 0.0])
    assert top_p_filter(probs, 0.01).tolist() == [1.0, 0.0, 0.0, 0.0]


def test_bad_request_is_a_clear_error_and_the_engine_keeps_working(
    small: tuple[object, object],
) -> None:
    eng = make_engine(small)
    with pytest.raises(GenerationError, match="max_new_tokens"):
        eng.generate(GenerationRequest(prompt="x", max_new_tokens=0))
    g = eng.generate(GenerationRequest(prompt="", max_new_tokens=3))  # empty prompt: from BOS
    assert g.prompt_tokens == 1 and 1 <= g.new_tokens <= 3


def test_model_error_drops_the_cache(small: tuple[object, object]) -> None:
    eng = make_engine(small)
    eng.generate(GenerationRequest(prompt=CODE[:300], max_new_tokens=3))
    assert eng.cached_tokens > 0

    def boom(text: str) -> bool:
        raise RuntimeError("stop_fn exploded")

    with pytest.raises(RuntimeError, match="exploded"):
        eng.generate(GenerationRequest(prompt=CODE[:300], max_new_tokens=3, stop_fn=boom))
    assert eng.cached_tokens == 0
    g = eng.generate(GenerationRequest(prompt=CODE[:300], max_new_tokens=3))
    assert g.reused_tokens == 0 and g.new_tokens == 3


def test_token_table_spells_tokens_as_the_tokenizer_decodes_them(
    small: tuple[object, object],
) -> None:
    _, tok = small
    table = TokenTable(tok, len(tok))  # type: ignore[arg-type]
    assert table.exact
    ids = tok.encode(CODE[:400])  # type: ignore[attr-defined]
    assert b"".join(table.bytes_of[i] or b"" for i in ids).decode() == CODE[:400]
    assert table.bytes_of[tok.eos_token_id] is None  # type: ignore[attr-defined]


# --- prompt-lookup speculative decoding ---------------------------------------------


def test_prompt_lookup_proposes_what_followed_the_last_ngram() -> None:
    ctx = [5, 6, 7, 8, 9, 1, 5, 6, 7]
    for draft in (lookup_draft, lambda c, k: NgramIndex(c).draft(k)):
        assert draft(ctx, 3) == [8, 9, 1]
        assert draft([1, 2, 3], 3) == []
        # The latest earlier match wins.
        assert draft([4, 1, 2, 4, 3, 4], 1) == [3]


def _one_token(tok: object, text: str) -> int:
    ids = tok.encode(text, add_special_tokens=False)  # type: ignore[attr-defined]
    assert len(ids) == 1, f"{text!r} should be one token of the test tokenizer, got {ids}"
    return ids[0]


def _always(model: object, token: int) -> torch.Tensor:
    """Bias the output layer so that ``token`` is the greedy choice everywhere; returns
    the saved bias to restore."""
    head = model.get_output_embeddings()  # type: ignore[attr-defined]
    saved = head.bias.detach().clone()
    with torch.no_grad():
        head.bias[token] += 1e4
    return saved


def test_speculation_accepts_drafts_the_model_agrees_with(small: tuple[object, object]) -> None:
    model, tok = small
    x = _one_token(tok, " json")
    head = model.get_output_embeddings()  # type: ignore[attr-defined]
    saved = _always(model, x)
    try:
        eng = make_engine(small, speculative=True, draft_tokens=6)
        g = eng.generate(GenerationRequest(prompt="y =" + " json" * 8, max_new_tokens=20))
        assert g.text == " json" * 20
        assert eng.last_stats["accepted"] >= 15
        assert eng.last_stats["forwards"] <= 6  # instead of 20 one-token steps
        # The cache holds exactly what was fed: the next request reuses it correctly.
        again = eng.generate(GenerationRequest(prompt="y =" + " json" * 13))
        assert again.reused_tokens >= 12
    finally:
        with torch.no_grad():
            head.bias.copy_(saved)


@pytest.mark.parametrize("start", [0, 900, 2500])
def test_speculative_greedy_is_identical_to_plain_greedy(
    small: tuple[object, object], start: int
) -> None:
    plain = make_engine(small, speculative=False)
    spec = make_engine(small, speculative=True, draft_tokens=5)
    # Repetitive code, so drafts are found and some are rejected.
    prompt = CODE[start : start + 900]
    req = GenerationRequest(prompt=prompt, max_new_tokens=40)
    a = plain.generate(req)
    b = spec.generate(req)
    assert b.text == a.text and spec.last_tokens == plain.last_tokens
    assert spec.last_stats["drafted"] > 0
    # Warm, after typing, still identical.
    typed = GenerationRequest(prompt=prompt + "\n    return", max_new_tokens=40)
    assert spec.generate(typed).text == plain.generate(typed).text


def test_speculation_respects_stops_and_max_tokens(small: tuple[object, object]) -> None:
    model, tok = small
    x = _one_token(tok, " json")
    head = model.get_output_embeddings()  # type: ignore[attr-defined]
    saved = _always(model, x)
    try:
        eng = make_engine(small, speculative=True, draft_tokens=8)
        g = eng.generate(GenerationRequest(prompt=" json" * 10, max_new_tokens=5))
        assert (g.text, g.finish_reason, g.new_tokens) == (" json" * 5, "length", 5)
        seen: list[str] = []
        h = eng.generate(
            GenerationRequest(
                prompt=" json" * 10,
                max_new_tokens=30,
                stop_fn=lambda t: seen.append(t) or len(seen) == 7,
            )
        )
        assert (h.finish_reason, h.new_tokens, len(seen)) == ("stop_fn", 7, 7)
    finally:
        with torch.no_grad():
            head.bias.copy_(saved)


# --- the real specs: tiny (trained) and random:phi-1 (Phi-1 shape) --------------------


@pytest.fixture(scope="module", params=["tiny", "random:phi-1?layers=2"])
def spec_engine(request: pytest.FixtureRequest) -> LocalEngine:
    from model_runtime import load_engine

    eng = load_engine(request.param, device="cpu")
    assert isinstance(eng, LocalEngine)
    return eng


def _generate_ids(eng: LocalEngine, prompt: str, n: int) -> list[int]:
    ids = eng.tokenizer.encode(prompt, add_special_tokens=False)
    x = torch.tensor([ids])
    with torch.inference_mode(), torch_threads(eng.threads):
        out = eng.model.generate(
            x, attention_mask=torch.ones_like(x), max_new_tokens=n, do_sample=False
        )
    return out[0, len(ids) :].tolist()


def test_greedy_equals_generate_token_for_token_on_real_specs(spec_engine: LocalEngine) -> None:
    from model_runtime.tiny import corpus_text

    eng = spec_engine
    code = corpus_text()
    # A prompt that ends right after a docstring, as the pipeline builds them.
    end = code.index('"""', code.index('"""', code.index("def ") + 1) + 3) + 3
    prompt = code[max(0, end - 700) : end]
    typed = prompt + "\n    res"
    assert eng.speculative, "speculation is on by default for greedy requests"
    for speculative in (False, True):
        eng.speculative = speculative
        eng.reset_cache()
        eng.generate(GenerationRequest(prompt=prompt, max_new_tokens=16))
        assert eng.last_tokens == _generate_ids(eng, prompt, 16)
        # Warm: the user typed on; the cache is cropped and only the new tokens prefilled.
        g = eng.generate(GenerationRequest(prompt=typed, max_new_tokens=16))
        assert g.reused_tokens >= eng.count_tokens(prompt) - 2
        assert eng.last_tokens == _generate_ids(eng, typed, 16)


def test_forced_indentation_after_docstring_on_tiny() -> None:
    from model_runtime import load_engine

    eng = load_engine("tiny", device="cpu")
    prompt = (
        'def add(a, b):\n    """Return the sum of a and b.\n\n    >>> add(2, 3)\n    5\n    """'
    )
    g = eng.generate(GenerationRequest(prompt=prompt, forced_prefix="\n    ", max_new_tokens=16))
    assert g.text.startswith("\n    ")
    assert g.text.strip(), "tiny should write something after the indentation"


def test_drafting_backs_off_when_the_model_rejects_drafts() -> None:
    d = Drafting(8)
    for _ in range(2):  # two verify passes in a row with nothing accepted
        assert d.wants_draft()
        d.start(8)
        d.settle()
    assert [d.wants_draft() for _ in range(5)] == [False] * 4 + [True]
    d.start(1)
    d.accepted = 1
    d.settle()  # a full acceptance: draft more again, no back-off
    assert d.k == 2 and d.misses == 0 and d.wants_draft()


def test_small_cpu_model_decodes_on_one_thread_and_restores_the_setting(
    small: tuple[object, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PHI_LSP_THREADS", raising=False)
    before = torch.get_num_threads()
    eng = make_engine(small)
    assert eng.threads == 1
    seen: list[int] = []
    eng.generate(
        GenerationRequest(
            prompt="x = 1", max_new_tokens=2, stop_fn=lambda t: seen.append(torch.get_num_threads())
        )
    )
    assert seen and set(seen) == {1}
    assert torch.get_num_threads() == before
    monkeypatch.setenv("PHI_LSP_THREADS", "0")  # 0: leave torch's setting alone
    assert make_engine(small).threads == 0


def test_static_cache_for_cuda_graphs_decodes_like_generate_on_cpu(
    small: tuple[object, object],
) -> None:
    """The static cache the CUDA-graph path uses (fixed addresses, masked tail, crop by
    moving the length) checked eagerly on the CPU: greedy equals generate, cold and warm."""
    model, _ = small
    eng = make_engine(small, speculative=True)
    assert not eng.cuda_graphs  # only on CUDA
    eng._cache = PrefixCache(model.config, capacity=512, static=True)  # type: ignore[attr-defined]
    prompt = CODE[:700]
    for p in (prompt, prompt + "    def f(x", prompt):  # cold, typed on, edited back
        ids, text = reference(small, p, 20)
        g = eng.generate(GenerationRequest(prompt=p, max_new_tokens=20))
        assert g.text == text and eng.last_tokens == ids
    assert g.reused_tokens == g.prompt_tokens - 1


def test_text_decoder_holds_back_a_split_character_until_it_is_complete(
    small: tuple[object, object],
) -> None:
    _, tok = small
    ids = tok.encode("é", add_special_tokens=False)  # type: ignore[attr-defined]
    assert len(ids) == 2, "the test tokenizer spells é as its two UTF-8 bytes"
    table = TokenTable(tok, len(tok))  # type: ignore[arg-type]
    d = TextDecoder(table, tok)
    assert d.push(ids[0]) == ""  # half a character: nothing to show yet
    assert d.push(ids[1]) == "é"
    cut = TextDecoder(table, tok)
    cut.push(ids[0])
    assert cut.finish() == tok.decode(ids[:1]) == "\ufffd"  # as tokenizer.decode renders it


def test_cuda_graph_capture_failure_falls_back_to_eager_decoding(
    small: tuple[object, object],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Where compiling the decode step fails (no Triton, an old GPU), loading still
    succeeds and the engine decodes eagerly, with a warning that says so."""

    def broken_compile(fn: object, **kw: object) -> object:
        def step(*a: object, **k: object) -> object:
            raise RuntimeError("triton not found")

        return step

    monkeypatch.setattr(torch, "compile", broken_compile)
    eng = make_engine(small, cuda_graphs=True)
    assert not eng.cuda_graphs and "decoding eagerly" in caplog.text
    ids, text = reference(small, CODE[:500], 12)
    assert eng.generate(GenerationRequest(prompt=CODE[:500], max_new_tokens=12)).text == text


def test_cuda_graph_wiring_decodes_like_generate_with_an_identity_compile(
    small: tuple[object, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The graph path minus the compiler: static cache, separate step function, capture
    at load. (The compiled step itself needs CUDA: tests/gpu.)"""
    calls: list[int] = []

    def identity_compile(fn, **kw):  # type: ignore[no-untyped-def]
        assert kw == {"mode": "reduce-overhead", "fullgraph": True}

        def step(*a, **k):  # type: ignore[no-untyped-def]
            calls.append(k["input_ids"].shape[1])
            return fn(*a, **k)

        return step

    monkeypatch.setattr(torch, "compile", identity_compile)
    eng = make_engine(small, cuda_graphs=True)
    assert eng.cuda_graphs and calls, "the step was run once at load (capture)"
    assert eng.cached_tokens == 0  # the capture request left nothing behind
    calls.clear()
    for p in (CODE[:600], CODE[:600] + "    x = 1"):
        ids, _ = reference(small, p, 16)
        eng.generate(GenerationRequest(prompt=p, max_new_tokens=16))
        assert eng.last_tokens == ids
    assert calls and set(calls) == {1}  # only one-token decode steps go through the graph


def test_spec_cost_drafts_only_where_a_verify_pass_pays() -> None:
    c = SpecCost()
    assert c.worth_it()  # nothing measured yet: try
    c.observe_single(80.0)
    c.observe_verify(240.0)  # a CPU verify pass: three one-token steps
    c.observe_gain(1.5)  # few drafts accepted
    assert not c.worth_it()
    assert sum(c.worth_it() for _ in range(SpecCost.RECHECK)) == 1  # an occasional trial
    for _ in range(10):
        c.observe_gain(6)  # the model now copies long runs from the prompt
    assert c.worth_it()
    gpu = SpecCost()
    gpu.observe_single(10.0)
    gpu.observe_verify(11.0)  # a GPU verify pass costs about one step
    gpu.observe_gain(1.3)
    assert gpu.worth_it()


def test_ngram_index_drafts_what_the_reference_scan_drafts() -> None:
    import random

    rng = random.Random(0)
    for trial in range(200):
        seq = [rng.randrange(5) for _ in range(rng.randrange(1, 60))]
        split = rng.randrange(len(seq) + 1)
        index = NgramIndex(seq[:split])
        for i, t in enumerate(seq[split:]):  # tokens arriving one by one, as in decoding
            index.append(t)
            if i % 3 == 0:  # drafts asked now and then, as the cost gate allows
                k = rng.randrange(1, 9)
                assert index.draft(k) == lookup_draft(seq[: split + i + 1], k), (trial, seq)
        k = rng.randrange(1, 9)
        assert index.draft(k) == lookup_draft(seq, k), (trial, seq, k)


def test_generation_uses_the_current_cache_argument(
    small: tuple[object, object], caplog: pytest.LogCaptureFixture
) -> None:
    """No deprecated transformers argument at any generation (``past_key_values`` is
    logged as deprecated once per process, in every editor's log): cold, warm, drafts."""
    import logging
    import warnings

    logging.Logger.warning_once.cache_clear()  # type: ignore[attr-defined]  # transformers' once-only cache
    eng = make_engine(small)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        warnings.simplefilter("error", DeprecationWarning)
        with caplog.at_level(logging.WARNING, logger="transformers"):
            for p in (CODE[:400], CODE[:400] + "    x", CODE[:300]):
                eng.generate(GenerationRequest(prompt=p, max_new_tokens=12))
    assert eng.last_stats["forwards"] > 1
    assert not [r for r in caplog.records if "deprecated" in r.getMessage()], caplog.text
