"""Model specs → engines. See design.md "Model specs"."""

from __future__ import annotations

from model_runtime.types import Engine, ModelLoadError


def load_engine(spec: str, device: str = "auto", dtype: str = "auto", **options: object) -> Engine:
    if spec.startswith("replay:"):
        from model_runtime.backends.replay import ReplayEngine

        delay = float(options.get("replay_delay_s", 0.0))  # type: ignore[arg-type]
        return ReplayEngine(spec.removeprefix("replay:"), delay_s=delay)
    if spec.startswith("openai:"):
        # A remote OpenAI-compatible server; options: remote_model, api_key_env, timeout_s,
        # verify_tls (see backends/openai.py). device/dtype are the server's business.
        from model_runtime.backends.openai import OpenAIEngine

        return OpenAIEngine(spec.removeprefix("openai:"), **options)  # type: ignore[arg-type]
    # TODO(foundation): tiny, random:phi-1, directories, hub ids, openai:URL.
    raise ModelLoadError(f"model spec {spec!r} is not supported yet")
