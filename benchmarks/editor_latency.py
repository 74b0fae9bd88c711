"""Keystroke -> visible ghost text in real editors, with the real server and `replay:`.

Runs the editor tests that time it (tests/e2e/test_nvim.py, test_vscode.py: each
p50 over 20 tries of "type one space at the end of the indentation inside a
function, wait until the suggestion is drawn") and prints one JSON object. The
`replay:` model answers in microseconds, so the figures are the editor + client +
LSP round trip: what phi-lsp adds on top of the model's own time.

    python benchmarks/editor_latency.py            # needs: bash scripts/setup-editors.sh

Neovim figures include the editor's own wait before it asks (editor_debounce_ms).
The machine is shared: read the ratios, not the absolute numbers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "latency.jsonl"
        env = {**os.environ, "PHI_LSP_LATENCY_OUT": str(out)}
        cmd = [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-rs",
            "-p",
            "no:cacheprovider",
            "tests/e2e/test_nvim.py::test_keystroke_to_ghost_text_latency",
            "tests/e2e/test_vscode.py::test_ghost_text_in_vscode_is_accepted_with_tab",
        ]
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        figures = (
            [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
        )
    result: dict[str, object] = {
        "benchmark": "editor keystroke -> ghost text (replay model)",
        "figures": figures,
        "load_average_1m": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
    }
    by_editor = {f"{f['editor']} / {f['path']}": f["p50_ms"] for f in figures}
    native = next((f["p50_ms"] for f in figures if f["path"] == "vim.lsp.inline_completion"), None)
    if native:
        result["p50_ratio_to_neovim_native"] = {
            k: round(v / native, 2) for k, v in by_editor.items()
        }
    if proc.returncode != 0:
        # Skips (editors not installed) or failures: say which, keep stdout one object.
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-15:]
        result["pytest_exit"] = proc.returncode
        result["pytest_tail"] = tail
    print(json.dumps(result, indent=2))
    return 0 if figures else 1


if __name__ == "__main__":
    sys.exit(main())
