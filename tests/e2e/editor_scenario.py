"""The scenario both editor tests play (tests/e2e/test_nvim.py, test_vscode.py).

A function with a signature, a docstring and one doctest; the cursor on an
indented empty line below it. The `replay:` model continues with REPLAY, "the
true rest of the file", so the suggestion is known: EXPECT.
"""

from __future__ import annotations

import json
import os
import subprocess
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


# --- The README's set-up, as written, in a clean clone ----------------------------

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
# A package module with a relative import (issue 12): its suggestion must arrive verified.
PKG_FILES = {
    "pyproject.toml": "[project]\nname = 'demo'\n",
    "pkg/__init__.py": "",
    "pkg/helpers.py": "def double(x):\n    return 2 * x\n",
    "pkg/calc.py": (
        "from .helpers import double\n\n\n"
        'def quad(x):\n    """Four times x.\n\n    >>> quad(3)\n    12\n    """\n'
    ),
}
PKG_REPLAY = "return double(double(x))\n"
PKG_EXPECT = "return double(double(x))"
_clones: dict[str, Path] = {}


def make_package(root: Path) -> Path:
    """Write PKG_FILES under `root`; returns pkg/calc.py."""
    for rel, text in PKG_FILES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root / "pkg/calc.py"


def readme_section(title: str) -> str:
    text = README.read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def readme_commands(section: str, after: str) -> str:
    """The first indented (4-space) code block after the text `after` in `section`."""
    rest = section[section.index(after) :]
    lines = rest.splitlines()
    block: list[str] = []
    for line in lines[1:]:
        if line.startswith("    ") and line.strip():
            block.append(line[4:])
        elif block:
            break
    assert block, f"no command block after {after!r} in the README"
    return "\n".join(block)


def readme_lua(section: str) -> str:
    """The ```lua block of `section`."""
    start = section.index("```lua\n") + len("```lua\n")
    return section[start : section.index("```", start)]


def clean_clone(tmp: Path) -> Path:
    """A clone of this checkout's HEAD with the README's set-up step run in it, as
    written (a venv and `pip install ... -e .`; pip finds torch where pip is told to).
    Done once per session and HEAD."""
    head = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    if head in _clones:
        return _clones[head]
    clone = tmp / "phi-lsp"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True, timeout=120)
    top = README.read_text()
    setup = readme_commands(top[: top.index("\n## ")], "**Set up and run")
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    proc = subprocess.run(
        ["bash", "-c", f"set -e\n{setup}"],
        cwd=clone,
        capture_output=True,
        text=True,
        timeout=1200,
        env=env,
    )
    assert proc.returncode == 0, (
        f"README set-up failed:\n{setup}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    )
    _clones[head] = clone
    return clone
