"""Suites of ``phi-lsp bench`` beyond the engine: each module has ``run(args) -> dict``."""
