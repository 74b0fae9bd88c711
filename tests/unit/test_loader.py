"""Model specs → models: the real from_pretrained path, Phi-1's shape, clear errors."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from model_runtime.describe import describe
from model_runtime.loader import load_model_and_tokenizer, parse_spec
from model_runtime.types import ModelLoadError

ROOT = Path(__file__).resolve().parents[2]


def _offline_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """An environment with an empty HF cache, offline, and no network to fall back on."""
    env = dict(os.environ)
    env.update(
        HF_HOME=str(tmp_path / "hf"),
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        # Connection refused at once, should anything try the network.
        HF_ENDPOINT="http://127.0.0.1:9",
        PHI_LSP_CACHE_DIR=str(tmp_path / "cache"),
    )
    env.update(extra)
    return env


def _phi_lsp(args: list[str], env: dict[str, str], timeout: float = 120) -> tuple[int, str, str]:
    p = subprocess.run(
        [sys.executable, "-m", "phi_lsp", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return p.returncode, p.stdout, p.stderr


# --- tiny through from_pretrained ----------------------------------------------------


def test_tiny_loads_from_its_directory_through_from_pretrained(tiny_dir: Path) -> None:
    from transformers import AutoModelForCausalLM, PhiForCausalLM, PreTrainedTokenizerFast

    model, tok, info = load_model_and_tokenizer("tiny", device="cpu")
    assert isinstance(model, PhiForCausalLM)
    assert isinstance(tok, PreTrainedTokenizerFast)
    assert model.config.rope_parameters["partial_rotary_factor"] == 0.5
    assert model.config.hidden_act == "gelu_new"
    assert not model.training
    assert tok.eos_token == "<|endoftext|>" and model.config.eos_token_id == tok.eos_token_id
    assert (info.source, info.backend, info.device, info.dtype) == (
        str(tiny_dir),
        "local",
        "cpu",
        "float32",
    )
    assert info.architecture == "PhiForCausalLM" and info.context_length == 2048
    assert info.params == sum(p.numel() for p in model.parameters())

    # The same directory given as a spec, and plain transformers, give the same model.
    by_dir, _, dir_info = load_model_and_tokenizer(str(tiny_dir), device="cpu")
    plain = AutoModelForCausalLM.from_pretrained(tiny_dir).eval()
    ids = torch.tensor([tok.encode("def add(a, b):")])
    with torch.inference_mode():
        want = plain(ids).logits
        assert torch.equal(model(ids).logits, want)
        assert torch.equal(by_dir(ids).logits, want)
    assert dir_info.spec == str(tiny_dir)


def test_half_precision_on_cpu_loads_as_asked_with_a_warning(
    tiny_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("WARNING", logger="model_runtime.loader"):
        model, _, info = load_model_and_tokenizer(str(tiny_dir), device="cpu", dtype="bfloat16")
    assert "bfloat16 on the CPU is slow" in caplog.text
    assert info.dtype == "bfloat16"
    assert next(model.parameters()).dtype == torch.bfloat16


# --- random:phi-1 ---------------------------------------------------------------------


def _phi1_params(layers: int) -> int:
    d, ff, v = 2048, 8192, 51200
    per_layer = 4 * (d * d + d) + (d * ff + ff) + (ff * d + d) + 2 * d
    return v * d + layers * per_layer + 2 * d + (d * v + v)


def test_random_phi1_has_phi1_shape_with_fewer_layers() -> None:
    model, tok, info = load_model_and_tokenizer("random:phi-1?layers=2", device="cpu")
    c = model.config
    assert (c.hidden_size, c.num_attention_heads, c.intermediate_size) == (2048, 32, 8192)
    assert (c.vocab_size, c.max_position_embeddings, c.num_hidden_layers) == (51200, 2048, 2)
    assert c.rope_parameters["partial_rotary_factor"] == 0.5 and c.hidden_act == "gelu_new"
    assert info.params == _phi1_params(2)
    # Rotary frequencies were rebuilt after materialising from meta: 64 * 0.5 / 2 of them.
    inv = model.model.rotary_emb.inv_freq
    assert inv.shape == (16,) and inv[0] == 1.0 and torch.all(inv[1:] < inv[:-1])
    ids = torch.tensor([tok.encode("def f(x):\n    return x")])
    with torch.inference_mode():
        logits = model(ids).logits
    assert logits.shape == (1, ids.shape[1], 51200) and torch.isfinite(logits).all()
    # Initialised like transformers would: weights ~ N(0, 0.02), norms at 1, biases at 0.
    w = model.lm_head.weight.detach()
    assert abs(float(w.std()) - 0.02) < 0.001
    assert torch.all(model.model.final_layernorm.weight == 1)
    assert torch.all(model.model.layers[0].mlp.fc1.bias == 0)


def test_random_phi1_is_seeded() -> None:
    a, _, _ = load_model_and_tokenizer("random:phi-1?layers=1", device="cpu")
    b, _, _ = load_model_and_tokenizer("random:phi-1?layers=1&seed=0", device="cpu")
    assert torch.equal(a.model.layers[0].mlp.fc2.weight, b.model.layers[0].mlp.fc2.weight)
    del b
    c, _, _ = load_model_and_tokenizer("random:phi-1?layers=1&seed=1", device="cpu")
    assert not torch.equal(a.model.layers[0].mlp.fc2.weight, c.model.layers[0].mlp.fc2.weight)


def test_describe_counts_phi1_params_without_loading_weights() -> None:
    facts = describe("random:phi-1", device="cpu")
    assert facts["params"] == _phi1_params(24) == 1_418_270_720
    assert (facts["context_length"], facts["layers"], facts["architecture"]) == (
        2048,
        24,
        "PhiForCausalLM",
    )


def test_describe_a_directory_reads_params_from_the_weights_header(tiny_dir: Path) -> None:
    model, _, info = load_model_and_tokenizer(str(tiny_dir), device="cpu")
    facts = describe(str(tiny_dir), device="cpu")
    assert facts["params"] == info.params == sum(p.numel() for p in model.parameters())
    assert (facts["architecture"], facts["weights_present"]) == ("PhiForCausalLM", True)
    assert (facts["source"], facts["context_length"]) == (str(tiny_dir), 2048)


# --- bad input: clear errors ----------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("/no/such/model/dir", "does not exist"),
        ("./no-such-dir", "does not exist"),
        ("random:phi-2", "only random:phi-1"),
        ("random:phi-1?layers=abc", "layers must be an integer"),
        ("random:phi-1?layer=2", "unknown option 'layer'"),
        ("random:phi-1?layers=0", "between 1 and 64"),
        ("random:phi-1?", "bad query"),
        ("", "empty model spec"),
        ("not a spec!", "is not a model spec"),
    ],
)
def test_bad_specs_raise_clear_errors(spec: str, message: str) -> None:
    with pytest.raises(ModelLoadError, match=message):
        load_model_and_tokenizer(spec, device="cpu")


def test_a_directory_that_is_not_a_model_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="no config.json"):
        load_model_and_tokenizer(str(tmp_path), device="cpu")
    (tmp_path / "config.json").write_text('{"model_type": "phi"}')
    with pytest.raises(ModelLoadError, match="no weights"):
        load_model_and_tokenizer(str(tmp_path), device="cpu")
    a_file = tmp_path / "config.json"
    with pytest.raises(ModelLoadError, match="is a file, not a model directory"):
        parse_spec(str(a_file))


def test_corrupt_weights_are_a_load_error_not_a_crash(tmp_path: Path, tiny_dir: Path) -> None:
    for f in tiny_dir.iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    (tmp_path / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ModelLoadError, match=f"cannot load {tmp_path}"):
        load_model_and_tokenizer(str(tmp_path), device="cpu")


@pytest.mark.parametrize(
    ("device", "dtype", "message"),
    [
        ("cpu", "int2", "dtype 'int2' is not one of"),
        ("cpu", "float8", "dtype 'float8' is not one of"),
        ("tpu", "auto", "device 'tpu' is not one of"),
    ],
)
def test_bad_device_or_dtype_is_refused(device: str, dtype: str, message: str) -> None:
    with pytest.raises(ModelLoadError, match=message):
        load_model_and_tokenizer("random:phi-1?layers=1", device=device, dtype=dtype)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_explicit_cuda_without_cuda_is_refused() -> None:
    with pytest.raises(ModelLoadError, match="no CUDA GPU.*--device cpu or auto"):
        load_model_and_tokenizer("random:phi-1?layers=1", device="cuda")


def test_auto_picks_float32_on_cpu() -> None:
    from model_runtime.loader import resolve_dtype

    assert resolve_dtype("auto", "cpu") == "float32"
    assert resolve_dtype("auto", "cuda") == "float16"


# --- offline hub id, through the real CLI ---------------------------------------------


def _assert_offline_message(text: str) -> None:
    assert "microsoft/phi-1" in text
    assert "hf download microsoft/phi-1" in text
    assert "--model tiny` works offline" in text
    assert "Traceback" not in text


def test_model_info_offline_without_weights_says_how_to_get_them(tmp_path: Path) -> None:
    t0 = time.monotonic()
    rc, out, err = _phi_lsp(["model", "info", "microsoft/phi-1"], _offline_env(tmp_path))
    elapsed = time.monotonic() - t0
    assert rc == 1 and out == ""
    _assert_offline_message(err)
    assert "offline mode is on" in err
    assert elapsed < 30, f"took {elapsed:.1f} s: the offline error must not wait on a network"

    rc, out, err = _phi_lsp(["model", "info", "microsoft/phi-1", "--json"], _offline_env(tmp_path))
    record = json.loads(out)
    assert rc == 1 and record["spec"] == "microsoft/phi-1"
    _assert_offline_message(record["error"])


def test_no_network_without_offline_mode_also_fails_fast(tmp_path: Path) -> None:
    env = _offline_env(tmp_path)
    del env["HF_HUB_OFFLINE"], env["TRANSFORMERS_OFFLINE"]
    t0 = time.monotonic()
    rc, _, err = _phi_lsp(["model", "info", "microsoft/phi-1"], env)
    assert rc == 1 and "cannot be reached" in err
    _assert_offline_message(err)
    assert time.monotonic() - t0 < 30


def test_completion_with_phi1_offline_is_a_clear_error(tmp_path: Path) -> None:
    demo = tmp_path / "demo.py"
    demo.write_text((ROOT / "examples" / "demo.py").read_text())
    before = demo.read_text()
    rc, _, err = _phi_lsp(
        ["complete", str(demo), "--all", "--model", "microsoft/phi-1", "--write"],
        _offline_env(tmp_path),
        timeout=300,
    )
    assert rc != 0
    _assert_offline_message(err)
    assert demo.read_text() == before


def test_model_info_tiny_before_it_is_built_does_not_build_it(tmp_path: Path) -> None:
    env = _offline_env(tmp_path)
    rc, out, err = _phi_lsp(["model", "info", "tiny", "--json"], env)
    facts = json.loads(out)
    assert rc == 0, err
    assert facts["built"] is False and "build-tiny" in facts["note"]
    assert facts["source"] == str(tmp_path / "cache" / "models" / "tiny-v1")
    assert not (tmp_path / "cache" / "models" / "tiny-v1").exists()


def test_model_info_tiny_when_built(tiny_dir: Path) -> None:
    env = dict(os.environ)
    env["PHI_LSP_CACHE_DIR"] = str(tiny_dir.parent.parent)
    rc, out, err = _phi_lsp(["model", "info", "tiny", "--device", "cpu"], env)
    assert rc == 0, err
    assert str(tiny_dir) in out and "PhiForCausalLM" in out and "present locally" in out
    assert "final loss" in out


def test_cli_and_loader_imports_do_not_import_torch() -> None:
    code = (
        "import sys, phi_lsp.cli, phi_lsp.cli.model, model_runtime.loader, model_runtime.tiny;"
        "print('torch' in sys.modules, 'transformers' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == ["False", "False"]


# --- engines from specs -----------------------------------------------------------------


def test_load_engine_tiny_gives_a_local_engine_that_writes_the_body(tiny_dir: Path) -> None:
    from model_runtime import GenerationRequest, load_engine, tiny

    # An option meant for another backend does not stop the local engine from loading.
    engine = load_engine("tiny", device="cpu", replay_delay_s=0.5)
    try:
        assert type(engine).__name__ == "LocalEngine"
        assert engine.info.source == str(tiny_dir) and engine.info.backend == "local"
        prompt, body = tiny.split_at_docstring(tiny.corpus_functions()["add"])
        out = engine.generate(GenerationRequest(prompt=prompt, max_new_tokens=16, stop=("\n\n",)))
        # The body may end at end-of-text or at the blank line before the next def.
        assert out.text.rstrip("\n") == body.rstrip("\n") == "\n    return a + b"
    finally:
        engine.close()


def test_replay_specs_still_load(tmp_path: Path) -> None:
    from model_runtime import load_engine

    f = tmp_path / "rest.py"
    f.write_text("    return a + b\n")
    engine = load_engine(f"replay:{f}")
    assert engine.info.backend == "replay" and engine.info.source == str(f)
    with pytest.raises(ModelLoadError, match="replay: cannot read"):
        load_engine(f"replay:{tmp_path / 'missing.py'}")


def test_build_tiny_command_reports_an_existing_build(tiny_dir: Path) -> None:
    env = dict(os.environ, PHI_LSP_CACHE_DIR=str(tiny_dir.parent.parent))
    rc, out, err = _phi_lsp(["model", "build-tiny"], env)
    assert rc == 0, err
    assert out.strip() == str(tiny_dir) and "already built" in err


def _hub_cache_with(tmp_path: Path, repo_id: str, model_dir: Path) -> Path:
    """An HF_HOME whose hub cache holds ``model_dir`` as ``repo_id`` (the layout that
    `hf download` leaves: refs/main → snapshots/<commit>/files)."""
    home = tmp_path / "hf"
    repo = home / "hub" / f"models--{repo_id.replace('/', '--')}"
    commit = "0" * 40
    snap = repo / "snapshots" / commit
    snap.mkdir(parents=True)
    for f in model_dir.iterdir():
        if f.is_file():
            (snap / f.name).write_bytes(f.read_bytes())
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    return home


def _params_of(model_dir: Path) -> int:
    """Parameters stored in a saved model (the tiny build's size moves with its corpus)."""
    from safetensors import safe_open

    with safe_open(str(model_dir / "model.safetensors"), framework="pt") as f:
        return sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())  # noqa: SIM118 - safe_open is not iterable


@pytest.mark.parametrize("offline", [True, False])
def test_a_cached_hub_model_loads_without_network(
    tmp_path: Path, tiny_dir: Path, offline: bool
) -> None:
    env = _offline_env(tmp_path)
    env["HF_HOME"] = str(_hub_cache_with(tmp_path, "someone/tiny-copy", tiny_dir))
    if not offline:  # no offline flag, and the hub refuses connections: still loads, fast
        del env["HF_HUB_OFFLINE"], env["TRANSFORMERS_OFFLINE"]
    code = (
        "from model_runtime.loader import load_model_and_tokenizer as load;"
        "m, t, i = load('someone/tiny-copy', device='cpu');"
        "print(type(m).__name__, i.params, i.source)"
    )
    t0 = time.monotonic()
    p = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert p.returncode == 0, p.stderr[-2000:]
    params = _params_of(tiny_dir)
    assert p.stdout.split()[:2] == ["PhiForCausalLM", str(params)]
    assert "someone/tiny-copy (Hugging Face cache)" in p.stdout
    assert time.monotonic() - t0 < 60

    rc, out, err = _phi_lsp(["model", "info", "someone/tiny-copy", "--json"], env)
    facts = json.loads(out)
    assert rc == 0, err
    assert (facts["weights_present"], facts["params"]) == (True, params)
    assert "Hugging Face cache" in facts["source"]
