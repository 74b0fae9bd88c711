#!/usr/bin/env bash
# The test command (README, CI): a venv in .venv with the CPU torch wheel, lint, then pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# torch pinned: 2.13.0 is the CPU wheel on these machines; unpinned pulls GBs of CUDA.
.venv/bin/python -m pip install -q "torch==2.13.0" -e ".[test]"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy  # phi_lsp and model_runtime ([tool.mypy] in pyproject.toml)
exec .venv/bin/python -m pytest -ra "$@"
