"""The README's first set-up command, run as written in a fresh copy of the repository.

It is what a new user types first: a venv, the pinned CPU torch, an editable install, and
`phi-lsp complete ... --model tiny --verify`. The test copies the files git knows about
(a clean clone has nothing else), runs the command with bash from that copy, and checks
what the user sees: a diff that fills both demo functions and says they passed.
The tiny model comes from the user cache the suite already built (the README run would
otherwise train it again for minutes); pip uses its own cache.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def _readme_command(heading: str) -> str:
    """The indented command block right after the bold `heading` line of the README."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    at = text.index(heading)
    block = re.search(r"\n\n((?: {4}.*\n)+)", text[at:])
    assert block, f"no command block after {heading!r} in README.md"
    return "\n".join(line[4:] for line in block.group(1).splitlines())


def _copy_repository(dest: Path) -> None:
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, files):
        src = ROOT / os.fsdecode(name)
        if not src.is_file():  # deleted in the working tree, not yet committed
            continue
        target = dest / os.fsdecode(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)


def test_readme_setup_command_fills_and_verifies_the_demo(tmp_path: Path, tiny_dir: Path) -> None:
    command = _readme_command("**Set up and run")
    assert "phi-lsp complete" in command and "--model tiny" in command
    repo = tmp_path / "phi-lsp"
    _copy_repository(repo)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["PHI_LSP_CACHE_DIR"] = str(tiny_dir.parents[1])  # <cache>/models/tiny-v1
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    proc = subprocess.run(
        ["bash", "-c", command],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    # pip's own lines come first on stdout; the diff is what phi-lsp printed after them.
    at = proc.stdout.find("--- a/examples/demo.py")
    assert at >= 0, proc.stdout[-2000:]
    diff = proc.stdout[at:]
    added = [line for line in diff.splitlines() if line.startswith("+    ")]
    assert len(added) == 2, diff  # one body line for add, one for is_even
    assert "add: passed" in proc.stderr and "is_even: passed" in proc.stderr, proc.stderr[-2000:]
    # The demo file itself is untouched (a diff, not --write).
    assert (repo / "examples/demo.py").read_text() == (ROOT / "examples/demo.py").read_text()
