#!/usr/bin/env bash
# Issue 8's GPU figures in one command, on a machine with CUDA, torch and this package's
# dependencies installed (pip install -e .):
#
#   bash benchmarks/gpu.sh        # writes benchmarks/gpu-<device>.json, then runs tests/gpu
#
# random:phi-1 in fp16 (Phi-1's exact shape, random weights): cold and warm end-to-end
# latency for a 1,500-token prompt + 48 new tokens (p50/p95 over 20 runs), decode tok/s as a
# share of the measured memory bandwidth (bound_share), plain generate() in the same run,
# and prompt-lookup speculation's acceptance and speed-up.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
name=$("$PY" -c 'import torch; print(torch.cuda.get_device_name(0).replace(" ", "-"))')
out="benchmarks/gpu-$name.json"
PYTHONPATH=. "$PY" -m phi_lsp bench --suite engine --model random:phi-1 --device cuda \
    --dtype float16 --prompt-tokens 1500 --new-tokens 48 --runs 20 >"$out.tmp"
mv "$out.tmp" "$out"
echo "wrote $out" >&2
PYTHONPATH=. "$PY" -m pytest -q -s -m gpu tests/gpu
