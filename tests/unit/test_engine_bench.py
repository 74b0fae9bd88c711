"""``phi-lsp bench``: the engine suite's figures and the suite dispatcher."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import pytest

from phi_lsp import bench as phi_bench
from phi_lsp.bench.engine import body_prompts, decode_bytes_per_token, engine_bench

ENGINE_KEYS = {
    "model",
    "device",
    "dtype",
    "prompt_tokens",
    "new_tokens",
    "cold_ms",
    "warm_ms",
    "warm_over_cold",
    "decode_tok_s",
    "prefill_tok_s",
    "generate_ms",
    "ours_over_generate",
    "bound_share",
    "cold_p95_ms",
    "warm_p95_ms",
}


@pytest.fixture(scope="module")
def tiny():  # type: ignore[no-untyped-def]
    from model_runtime import load_engine

    return load_engine("tiny", device="cpu")


def test_engine_bench_measures_reuse_and_compares_with_generate(tiny) -> None:  # type: ignore[no-untyped-def]
    r = engine_bench(tiny, prompt_tokens=400, new_tokens=4, runs=1)
    assert r.keys() >= ENGINE_KEYS
    assert r["prompt_tokens"] == pytest.approx(400, abs=3)
    assert r["reused_tokens"] >= r["prompt_tokens"] - 1  # the warm request reused the prompt
    # 400 tokens of prefill against a handful: prefix reuse shows even on a noisy machine.
    assert r["warm_prefill_ms"] < r["cold_prefill_ms"]
    assert r["generate_ms"] > 0 and r["bound_share"] > 0
    assert r["cold_p95_ms"] >= r["cold_ms"] and r["warm_p95_ms"] >= r["warm_ms"]


def test_body_prompts_end_after_a_docstring(tiny) -> None:  # type: ignore[no-untyped-def]
    prompts = body_prompts(tiny, 200, 3)
    assert len(set(prompts)) == 3
    assert all(p.endswith('"""') for p in prompts)


def test_decode_bytes_count_weights_once_and_the_kv(tiny) -> None:  # type: ignore[no-untyped-def]
    m = tiny.model
    weights = decode_bytes_per_token(m, 0)
    assert weights < sum(p.numel() * 4 for p in m.parameters())  # one embedding row only
    per_pos = 2 * m.config.num_hidden_layers * m.config.hidden_size * 4
    assert decode_bytes_per_token(m, 100) - weights == 100 * per_pos


def _args(**kw: object) -> argparse.Namespace:
    base = dict(
        suite="engine",
        model="tiny",
        device="cpu",
        dtype="auto",
        prompt_tokens=100,
        new_tokens=2,
        runs=1,
        json=True,
    )
    base.update(kw)
    return argparse.Namespace(**base)


def test_missing_suite_module_is_reported_not_raised(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(phi_bench, "SUITES", (*phi_bench.SUITES, "nosuch"))
    assert phi_bench.run_bench(_args(suite="nosuch")) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["suite"] == "nosuch" and "phi_lsp.bench.nosuch" in out["error"]


def test_unknown_suite_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    from phi_lsp.cli import main

    assert main(["bench", "--suite", "speed"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("phi-lsp bench: unknown suite 'speed'")
    with pytest.raises(ValueError, match="unknown suite"):
        phi_bench.run_bench(_args(suite="speed"))


def test_bad_model_is_one_json_error_and_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert phi_bench.run_bench(_args(model="random:phi-1?layers=0")) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["suite"] == "engine" and "layers" in out["error"]


def test_cli_prints_one_json_object(tmp_path) -> None:  # type: ignore[no-untyped-def]
    cmd = [sys.executable, "-m", "phi_lsp", "bench", "--suite", "engine", "--model", "tiny"]
    cmd += ["--prompt-tokens", "120", "--new-tokens", "3", "--runs", "1", "--json"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)  # exactly one object, logs on stderr
    assert out["suite"] == "engine" and out.keys() >= ENGINE_KEYS
    assert out["speculative"]["identical_output"] is True
