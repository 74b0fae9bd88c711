"""Helpers around remote OpenAI-compatible servers.

- ``probe(url, ...)``: what ``phi-lsp model info openai:URL`` prints (models served,
  context length, tokenize endpoint, a one-token round trip).
- ``LlamaServer``: llama.cpp's server (the ``llama-cpp-python[server]`` build made by
  ``scripts/setup-llama.sh``) serving a GGUF file on a free loopback port; and
  ``convert_to_gguf`` for a ``save_pretrained`` model directory. Used by the e2e tests and
  ``benchmarks/load_test.py``; handy to try the ``openai:`` backend on a laptop.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from model_runtime.types import GenerationRequest, ModelLoadError

SETUP_HINT = "bash scripts/setup-llama.sh  (builds llama-cpp-python[server], ~7 min on 2 cores)"


def probe(
    url: str, *, remote_model: str = "", api_key_env: str = "", ca_bundle: str = ""
) -> dict[str, Any]:
    """Check an OpenAI-compatible server and describe it. Raises ModelLoadError."""
    from model_runtime.backends.openai import OpenAIEngine

    eng = OpenAIEngine(url, remote_model=remote_model, api_key_env=api_key_env, ca_bundle=ca_bundle)
    try:
        t0 = time.perf_counter()
        gen = eng.generate(GenerationRequest(prompt="def f():", max_new_tokens=1))
        models = [str(m.get("id")) for m in eng.models]
        tokenize = eng.tokenize_endpoint or "none (estimating chars/3.5)"
        ms = round((time.perf_counter() - t0) * 1000, 1)
        return {
            **eng.info.as_dict(),
            "params": None,  # the server does not say
            "weights_present": None,
            "url": eng.info.source,
            "model": eng.model,
            "models": models,
            "tokenize": tokenize,
            "api_key_env": api_key_env or None,
            "round_trip_ms": ms,
            "finish_reason": gen.finish_reason,
            "note": f"serves {', '.join(models) or '(no models listed)'}; asking for "
            f"{eng.model or '(default)'}; token counts: {tokenize}; one-token completion "
            f"in {ms:g} ms",
        }
    except Exception as e:  # the server answered /models but cannot complete
        raise ModelLoadError(f"{eng.info.source} lists models but cannot complete: {e}") from None
    finally:
        eng.close()


# --- a local llama.cpp server (tests, benchmarks, trying it out) --------------------------


def llama_dir() -> Path:
    return Path(os.environ.get("PHI_LSP_LLAMA_DIR") or Path.home() / ".cache" / "phi-lsp-llama")


def llama_missing() -> str:
    """'' when scripts/setup-llama.sh has completed, else why not and how to fix it."""
    d = llama_dir()
    if not (d / ".ok").is_file():
        return f"llama.cpp server not built in {d}; run: {SETUP_HINT}"
    return ""


def convert_to_gguf(model_dir: Path, out: Path, outtype: str = "f32") -> Path:
    """Convert a ``save_pretrained`` PhiForCausalLM directory to GGUF (``outtype``: f32,
    f16, q8_0, ... as the converter's --outtype), atomically.

    Runs llama.cpp's converter (fetched by setup-llama.sh) with this interpreter (it
    needs torch, transformers and numpy). A locally trained byte-level BPE is not in the
    converter's list of known pre-tokenizers; it splits text exactly like GPT-2, so the
    converter is told so.
    """
    src = llama_dir() / "llama.cpp"
    if not (src / "convert_hf_to_gguf.py").is_file():
        raise ModelLoadError(f"llama.cpp converter missing in {src}; run: {SETUP_HINT}")
    wrapper = (
        "import runpy, sys\n"
        "import conversion.base as base\n"
        "for obj in vars(base).values():\n"
        "    if isinstance(obj, type) and hasattr(obj, 'get_vocab_base_pre'):\n"
        "        obj.get_vocab_base_pre = lambda self, tokenizer: 'gpt-2'\n"
        "sys.argv = ['convert_hf_to_gguf.py', *sys.argv[1:]]\n"
        "runpy.run_path('convert_hf_to_gguf.py', run_name='__main__')\n"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".gguf", dir=out.parent)
    os.close(fd)
    env = {**os.environ, "PYTHONPATH": f"{src / 'gguf-py'}{os.pathsep}{src}"}
    try:
        proc = subprocess.run(
            [sys.executable, "-c", wrapper, str(model_dir), "--outfile", tmp, "--outtype", outtype],
            cwd=src,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if proc.returncode != 0:
            raise ModelLoadError(
                f"GGUF conversion of {model_dir} failed:\n{proc.stderr[-2000:]}".rstrip()
            )
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LlamaServer:
    """``python -m llama_cpp.server`` on 127.0.0.1:<free port>; a context manager.

    ``log_path`` collects the server's stdout+stderr (its per-request timings and
    "Disconnected from client" lines). ``stop()`` ends it by its process id.
    """

    def __init__(
        self,
        gguf: Path,
        *,
        api_key: str = "",
        n_ctx: int = 2048,
        interrupt_requests: bool = False,
        log_path: Path | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        missing = llama_missing()
        if missing:
            raise ModelLoadError(missing)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.log_path = log_path or Path(tempfile.mkstemp(suffix=".log", prefix="llama-")[1])
        args = [
            str(llama_dir() / "venv" / "bin" / "python"),
            "-m",
            "llama_cpp.server",
            "--model",
            str(gguf),
            "--model_alias",
            gguf.stem,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--n_ctx",
            str(n_ctx),
            # Default True: a queued request cuts the running stream short. Off, each
            # editor's request runs to its own end (what a team server should do).
            "--interrupt_requests",
            str(interrupt_requests),
            *extra_args,
        ]
        if api_key:
            args += ["--api_key", api_key]
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        env = {k: v for k, v in os.environ.items() if not k.endswith("_PROXY")}
        self.proc = subprocess.Popen(
            args, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
        )

    def wait_ready(self, timeout_s: float = 60.0) -> LlamaServer:
        import httpx

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ModelLoadError(
                    f"llama.cpp server exited with {self.proc.returncode}:\n{self.log()[-2000:]}"
                )
            try:
                r = httpx.get(self.url + "/models", timeout=1.0)
                if r.status_code in (200, 401):
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise ModelLoadError(f"llama.cpp server not ready after {timeout_s:g} s:\n{self.log()}")

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()

    def __enter__(self) -> LlamaServer:
        return self.wait_ready()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def ensure_tiny_gguf() -> Path:
    """The ``tiny`` model converted to GGUF, cached beside the model (rebuilt with it)."""
    from model_runtime.tiny import ensure_tiny

    model_dir = Path(ensure_tiny())
    out = llama_dir() / "gguf" / f"{model_dir.name}.gguf"
    stamp = out.with_suffix(".src")
    meta = model_dir / "config.json"
    want = f"{model_dir} {meta.stat().st_mtime_ns}"
    if out.is_file() and stamp.is_file() and stamp.read_text() == want:
        return out
    convert_to_gguf(model_dir, out)
    stamp.write_text(want)
    return out
