"""``phi-lsp complete --verify --candidates 4`` with a real model (``tiny``) where the
first candidate (greedy) fails its examples and a later, sampled one passes.

``examples/ambiguous_demo.py``: "Return the extreme number in xs." is in the tiny
corpus twice, once with ``max(xs)`` and once with ``min(xs)``; the demo's docstring adds
an example only ``min`` satisfies. Greedy writes the other body. If this file fails
after a change to the corpus, the training recipe or the sampler, look at what
``--candidates 1`` writes now and pick the demo's deciding example against it (see
``tiny.ambiguous_pairs()`` for the other ambiguous prompts).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "examples" / "ambiguous_demo.py"
FUNCTION = "extreme"


def phi(cmd: list[str], *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*cmd, *args], cwd=cwd, capture_output=True, text=True, timeout=600)


def complete(cmd: list[str], cwd: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    args = ["complete", DEMO.name, "--function", FUNCTION, "--verify", "--model", "tiny"]
    return phi(cmd, *args, *extra, cwd=cwd)


@pytest.fixture
def demo(tmp_path: Path, tiny_dir: Path) -> Path:
    """A copy of the demo (``--write`` must not touch the checkout); tiny built once."""
    shutil.copy(DEMO, tmp_path / DEMO.name)
    return tmp_path


def record(r: subprocess.CompletedProcess[str]) -> dict:
    (rec,) = json.loads(r.stdout)["completions"]
    return rec


def test_greedy_alone_fails_the_deciding_example(phi_lsp_cmd: list[str], demo: Path) -> None:
    r = complete(phi_lsp_cmd, demo, "--candidates", "1", "--json")
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)  # examples fail
    rec = record(r)
    assert rec["candidates_tried"] == 1
    assert (rec["status"], rec["verified"]) == ("failed", False), rec
    # The shared example passes, the one added by the demo does not: a body, not junk.
    assert rec["examples"] == {"passed": 1, "failed": 1}, rec
    assert rec["text"].startswith("\n    return ")


def test_a_later_sampled_candidate_passes_and_is_written(
    phi_lsp_cmd: list[str], demo: Path
) -> None:
    greedy = record(complete(phi_lsp_cmd, demo, "--candidates", "1", "--json"))

    r = complete(phi_lsp_cmd, demo, "--candidates", "4", "--json")
    assert r.returncode == 0, r.stderr
    rec = record(r)
    assert rec["function"] == FUNCTION
    assert (rec["status"], rec["verified"]) == ("passed", True), rec
    assert rec["examples"] == {"passed": 2, "failed": 0}
    assert 2 <= rec["candidates_tried"] <= 4  # the first (greedy) one failed
    assert rec["text"] != greedy["text"]

    # Deterministic: seeded training and seeded sampling give the same answer again.
    again = record(complete(phi_lsp_cmd, demo, "--candidates", "4", "--json"))
    assert (again["text"], again["candidates_tried"]) == (rec["text"], rec["candidates_tried"])

    # --write puts that body in the file, and `phi-lsp verify` agrees that it passes.
    before = (demo / DEMO.name).read_text()
    w = complete(phi_lsp_cmd, demo, "--candidates", "4", "--write")
    assert w.returncode == 0, w.stderr
    after = (demo / DEMO.name).read_text()
    assert after != before and rec["text"].strip() in after
    v = phi(phi_lsp_cmd, "verify", DEMO.name, "--function", FUNCTION, "--json", cwd=demo)
    assert v.returncode == 0, v.stdout + v.stderr
    (report,) = json.loads(v.stdout)["functions"]
    assert (report["name"], report["status"], report["failed"]) == (FUNCTION, "passed", 0)
    assert report["passed"] == 2
