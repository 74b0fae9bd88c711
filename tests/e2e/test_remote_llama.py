"""The ``openai:URL`` backend against a real engine: llama.cpp's server on loopback.

The server is ``python -m llama_cpp.server`` (llama-cpp-python[server], built by
``scripts/setup-llama.sh``) serving the ``tiny`` model converted to GGUF, started by
these tests on a free 127.0.0.1 port and stopped by its process id at the end.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from model_runtime import load_engine
from model_runtime.backends.openai import OpenAIEngine
from model_runtime.remote import LlamaServer, llama_missing, probe
from model_runtime.tiny import corpus_functions, split_at_docstring
from model_runtime.types import GenerationError, GenerationRequest, ModelLoadError

pytestmark = pytest.mark.remote

KEY = "sk-llama-e2e-3f9c1d7a"
# A corpus prompt (ending at the docstring's closing quotes): tiny writes its body
# whatever the training run, so these tests don't depend on one set of weights.
PROMPT = split_at_docstring(corpus_functions()["add"])[0]


@pytest.fixture(scope="module")
def gguf() -> Path:
    missing = llama_missing()
    if missing:
        pytest.skip(missing)
    try:
        from model_runtime.remote import ensure_tiny_gguf

        return ensure_tiny_gguf()
    except ImportError as e:  # model_runtime.tiny not in this checkout
        pytest.skip(f"the tiny model is not available ({e})")


@pytest.fixture(scope="module")
def llama(gguf: Path) -> Iterator[LlamaServer]:
    with LlamaServer(gguf, extra_args=("--n_threads", "1")) as srv:
        yield srv


@pytest.fixture(scope="module")
def keyed_llama(gguf: Path) -> Iterator[LlamaServer]:
    with LlamaServer(gguf, api_key=KEY, extra_args=("--n_threads", "1")) as srv:
        yield srv


@pytest.fixture
def engine(llama: LlamaServer) -> Iterator[OpenAIEngine]:
    eng = load_engine(f"openai:{llama.url}")
    assert isinstance(eng, OpenAIEngine)
    yield eng
    eng.close()


def _eos_id(gguf: Path) -> int:
    from model_runtime.tiny import load_tiny_tokenizer

    tok = load_tiny_tokenizer()
    return int(tok.eos_token_id)


def test_model_info_describes_the_server(llama: LlamaServer, gguf: Path) -> None:
    info = probe(llama.url)
    assert info["backend"] == "openai"
    assert info["model"] == gguf.stem and info["models"] == [gguf.stem]
    assert info["tokenize"] == "llama-cpp-python"


def test_streams_the_same_greedy_text_as_transformers(engine: OpenAIEngine, gguf: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from model_runtime.tiny import ensure_tiny

    model_dir = ensure_tiny()
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    ids = tok(PROMPT, return_tensors="pt").input_ids
    with torch.inference_mode():
        out = model.generate(ids, max_new_tokens=24, do_sample=False)
    expected = tok.decode(out[0, ids.shape[1] :], skip_special_tokens=True)

    seen: list[str] = []
    gen = engine.generate(
        GenerationRequest(prompt=PROMPT, max_new_tokens=24),
        should_stop=None,
    )
    gen2 = engine.generate(
        GenerationRequest(
            prompt=PROMPT, max_new_tokens=24, stop_fn=lambda t: seen.append(t) or False
        )
    )
    assert gen.text == gen2.text == expected
    assert len(seen) > 3 and all(b.startswith(a) for a, b in zip(seen, seen[1:], strict=False))
    assert gen.new_tokens > 3  # streamed piece by piece, not one block
    assert engine.count_tokens(PROMPT) == ids.shape[1]  # the server's tokenizer


def test_stop_string_cuts_the_suggestion(engine: OpenAIEngine) -> None:
    full = engine.generate(GenerationRequest(prompt=PROMPT, max_new_tokens=32)).text
    assert len(full.strip()) > 4, full
    stop = full.strip()[2:5]
    gen = engine.generate(GenerationRequest(prompt=PROMPT, max_new_tokens=32, stop=(stop,)))
    assert gen.finish_reason == "stop"
    assert gen.text == full[: full.index(stop)]


def test_forced_prefix_is_honoured(engine: OpenAIEngine) -> None:
    gen = engine.generate(
        GenerationRequest(prompt=PROMPT, forced_prefix="\n    ", max_new_tokens=16)
    )
    assert gen.text.startswith("\n    ") and len(gen.text) > len("\n    ")
    odd = engine.generate(
        GenerationRequest(prompt=PROMPT, forced_prefix="\n    #", max_new_tokens=8)
    )
    assert odd.text.startswith("\n    #")


def test_cancel_mid_stream_stops_the_server(llama: LlamaServer, gguf: Path) -> None:
    # A long generation: end-of-text banned, so the server would run to max_tokens.
    long = {"logit_bias": {str(_eos_id(gguf)): -100.0}}
    eng = OpenAIEngine(llama.url, extra_body=long)
    req = GenerationRequest(prompt=PROMPT, max_new_tokens=1500)
    t0 = time.perf_counter()
    full = eng.generate(req)
    full_s = time.perf_counter() - t0
    assert full.finish_reason == "length" and full.new_tokens >= 1000, full
    # The same request, cancelled after a few tokens; then a short request at once.
    # llama-cpp-python serves one request at a time: had the server gone on generating
    # the cancelled one, the short request would wait for the rest of it.
    seen = [0]

    def should_stop() -> bool:
        seen[0] += 1
        return seen[0] > 5

    log_before = len(llama.log())
    t0 = time.perf_counter()
    cut = eng.generate(req, should_stop)
    short = eng.generate(GenerationRequest(prompt=PROMPT, max_new_tokens=4))
    cut_and_short_s = time.perf_counter() - t0
    assert cut.finish_reason == "cancelled" and cut.new_tokens <= 6
    assert short.text and short.finish_reason in ("length", "eos")
    assert cut_and_short_s < full_s / 3, (cut_and_short_s, full_s)
    assert "Disconnected from client" in llama.log()[log_before:]
    eng.close()


def test_prompt_longer_than_the_context_is_a_clear_error_and_serving_goes_on(
    engine: OpenAIEngine,
) -> None:
    with pytest.raises(GenerationError, match=r"model server at http://127\.0\.0\.1:\d+/v1"):
        engine.generate(GenerationRequest(prompt="x = 1\n" * 3000, max_new_tokens=8))
    assert engine.generate(GenerationRequest(prompt=PROMPT, max_new_tokens=4)).text


def test_server_gone_mid_session_is_a_clear_error(gguf: Path) -> None:
    with LlamaServer(gguf, extra_args=("--n_threads", "1")) as srv:
        eng = OpenAIEngine(srv.url, timeout_s=10)
        assert eng.generate(GenerationRequest(prompt=PROMPT, max_new_tokens=4)).text
    t0 = time.perf_counter()
    with pytest.raises(GenerationError, match=r"cannot connect .*\(connection refused\)"):
        eng.generate(GenerationRequest(prompt=PROMPT, max_new_tokens=4))
    assert time.perf_counter() - t0 < 5
    eng.close()


def test_right_key_works_and_wrong_key_is_refused_without_showing_it(
    keyed_llama: LlamaServer, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PHI_E2E_KEY", KEY)
    eng = load_engine(f"openai:{keyed_llama.url}", api_key_env="PHI_E2E_KEY")
    assert eng.generate(GenerationRequest(prompt=PROMPT, max_new_tokens=4)).text
    eng.close()

    wrong = "sk-wrong-" + KEY[::-1]
    monkeypatch.setenv("PHI_E2E_KEY", wrong)
    with pytest.raises(ModelLoadError) as err:
        load_engine(f"openai:{keyed_llama.url}", api_key_env="PHI_E2E_KEY")
    assert "refused the API key from $PHI_E2E_KEY (HTTP 401)" in str(err.value)
    out, errout = capfd.readouterr()
    assert wrong not in str(err.value) + out + errout

    monkeypatch.delenv("PHI_E2E_KEY")
    with pytest.raises(ModelLoadError, match="set apiKeyEnv"):
        load_engine(f"openai:{keyed_llama.url}")


def test_generate_n_gives_n_candidates(engine: OpenAIEngine) -> None:
    req = GenerationRequest(prompt=PROMPT, max_new_tokens=12, temperature=1.0, seed=1)
    gens = engine.generate_n(req, 3)
    assert len(gens) == 3 and all(g.text for g in gens)
    again = engine.generate_n(dataclasses.replace(req), 3)
    assert [g.text for g in again] == [g.text for g in gens]  # seeded: reproducible


def test_cli_model_info_checks_the_server(keyed_llama: LlamaServer, gguf: Path) -> None:
    import json
    import os
    import subprocess
    import sys

    from model_runtime.remote import free_port

    def info(*args: str, key: str = KEY) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "phi_lsp", "model", "info", *args],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "PHI_E2E_KEY": key},
        )

    url = f"openai:{keyed_llama.url}"
    ok = info(url, "--api-key-env", "PHI_E2E_KEY", "--json")
    assert ok.returncode == 0, ok.stderr
    facts = json.loads(ok.stdout)
    assert facts["models"] == [gguf.stem] and facts["backend"] == "openai"
    assert KEY not in ok.stdout + ok.stderr
    bad = info(url, "--api-key-env", "PHI_E2E_KEY", key="sk-nope-123")
    assert bad.returncode == 1 and "refused the API key from $PHI_E2E_KEY" in bad.stderr
    assert "sk-nope-123" not in bad.stdout + bad.stderr
    gone = info(f"openai:http://127.0.0.1:{free_port()}/v1")
    assert gone.returncode == 1 and "connection refused" in gone.stderr


# --- the language server with model = openai:URL ------------------------------------------


async def test_language_server_completes_remotely_and_survives_the_server_going_away(
    tmp_path: Path, gguf: Path
) -> None:
    # The real `phi-lsp --stdio`, driven as in test_server_e2e (helpers shared from there).
    from lsprotocol import types
    from test_server_e2e import ADD_CURSOR, ADD_SOURCE, doc_uri, server

    srv = LlamaServer(gguf, api_key=KEY, extra_args=("--n_threads", "1")).wait_ready()
    try:
        opts = {"model": f"openai:{srv.url}", "apiKeyEnv": "PHI_E2E_KEY", "maxNewTokens": 32}
        async with server(tmp_path, opts, env={"PHI_E2E_KEY": KEY}) as s:
            status = await s.ready()
            assert status["model"] == opts["model"]
            uri = doc_uri(tmp_path)
            s.open(uri, ADD_SOURCE)
            items = await s.inline(uri, ADD_CURSOR)
            assert items and items[0].insert_text.strip(), items
            srv.stop()  # the team's server goes away
            s.insert(uri, 9, 4, "q")  # not what was suggested: the model is asked again
            t0 = time.perf_counter()
            assert await s.inline(uri, types.Position(line=9, character=5)) == []
            assert time.perf_counter() - t0 < 10
            # Still serving: another request is answered (empty), then a clean shutdown.
            s.insert(uri, 9, 5, "z")
            assert await s.inline(uri, types.Position(line=9, character=6)) == []
        log = (tmp_path / "server.log").read_text()
        assert "connection refused" in log
        assert KEY not in log
    finally:
        srv.stop()


async def test_language_server_reports_an_unreachable_server_at_load(tmp_path: Path) -> None:
    from test_server_e2e import server

    from model_runtime.remote import free_port

    url = f"openai:http://127.0.0.1:{free_port()}/v1"
    async with server(tmp_path, {"model": url}) as s:
        last = await s.until(
            lambda: s.statuses and s.statuses[-1]["state"] == "error" and s.statuses[-1],
            30,
            "error status",
        )
        assert "cannot connect" in last["message"] and "connection refused" in last["message"]
