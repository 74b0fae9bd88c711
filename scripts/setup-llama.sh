#!/usr/bin/env bash
# Builds llama.cpp's OpenAI-compatible server (llama-cpp-python[server]) into its own venv and
# fetches llama.cpp's HF->GGUF converter from the same release's sdist. Idempotent: a finished
# step is skipped. Used by tests/e2e/test_remote_llama.py and benchmarks/load_test.py.
#
#   bash scripts/setup-llama.sh            # ~7 min on 2 cores the first time, seconds after
#   PHI_LSP_LLAMA_DIR=/somewhere bash scripts/setup-llama.sh
#
# Layout of $PHI_LSP_LLAMA_DIR (default ~/.cache/phi-lsp-llama):
#   venv/                      python -m llama_cpp.server
#   llama.cpp/                 convert_hf_to_gguf.py, conversion/, gguf-py/ (from the sdist;
#                              not part of this repo)
#   .ok                        written last; its presence means everything above is complete
set -euo pipefail

VERSION=${PHI_LSP_LLAMA_VERSION:-0.3.36}
DIR=${PHI_LSP_LLAMA_DIR:-$HOME/.cache/phi-lsp-llama}
PY=${PYTHON:-python3}
export PIP_DISABLE_PIP_VERSION_CHECK=1

if [ -f "$DIR/.ok" ] && [ "$(cat "$DIR/.ok")" = "$VERSION" ]; then
    echo "setup-llama: llama-cpp-python $VERSION already set up in $DIR" >&2
    exit 0
fi
mkdir -p "$DIR"

# 1. The server. GGML_NATIVE=OFF: a portable build (CI machines differ from the build host).
if ! "$DIR/venv/bin/python" -c "import llama_cpp.server, llama_cpp; assert llama_cpp.__version__ == '$VERSION'" 2>/dev/null; then
    echo "setup-llama: building llama-cpp-python[server]==$VERSION (compiles llama.cpp, several minutes)" >&2
    rm -rf "$DIR/venv"
    "$PY" -m venv "$DIR/venv"
    CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF}" "$DIR/venv/bin/pip" install -q \
        "llama-cpp-python[server]==$VERSION"
fi

# 2. The converter. The wheel does not ship it; the sdist vendors llama.cpp with it.
if [ ! -f "$DIR/llama.cpp/convert_hf_to_gguf.py" ]; then
    echo "setup-llama: fetching convert_hf_to_gguf.py from the llama-cpp-python $VERSION sdist" >&2
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    # --no-binary for this package only: its build dependencies may come as wheels.
    "$DIR/venv/bin/pip" download -q --no-deps --no-binary llama-cpp-python "llama-cpp-python==$VERSION" -d "$tmp"
    top="llama_cpp_python-$VERSION/vendor/llama.cpp"
    tar xzf "$tmp/llama_cpp_python-$VERSION.tar.gz" -C "$tmp" "$top/convert_hf_to_gguf.py" \
        --wildcards "$top/conversion*" "$top/gguf-py*"
    rm -rf "$DIR/llama.cpp.new"
    mv "$tmp/$top" "$DIR/llama.cpp.new"
    rm -rf "$DIR/llama.cpp"
    mv "$DIR/llama.cpp.new" "$DIR/llama.cpp"
fi

echo "$VERSION" >"$DIR/.ok"
echo "setup-llama: ready in $DIR" >&2
