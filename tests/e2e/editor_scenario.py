"""The scenario both editor tests play (tests/e2e/test_nvim.py, test_vscode.py).

A function with a signature, a docstring and one doctest; the cursor on an
indented empty line below it. The `replay:` model continues with REPLAY, "the
true rest of the file", so the suggestion is known: EXPECT.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

SOURCE = '''def add(a, b):
    """Return the sum of a and b.

    >>> add(2, 3)
    5
    """
'''
REPLAY = "return a + b\n"
EXPECT = "return a + b"
LATENCY_TRIES = 20
# A user would call a suggestion that takes over 1.5 s after a keystroke broken.
LATENCY_P50_LIMIT_MS = 1500
EDITORS_DIR = Path(os.environ.get("PHI_LSP_EDITORS_DIR", Path.home() / ".cache/phi-lsp-editors"))
SETUP_HINT = "run `bash scripts/setup-editors.sh`"


def record_latency(figure: dict[str, Any]) -> None:
    """Append a figure where benchmarks/editor_latency.py collects them."""
    out = os.environ.get("PHI_LSP_LATENCY_OUT")
    if out:
        with open(out, "a") as f:
            f.write(json.dumps(figure) + "\n")
