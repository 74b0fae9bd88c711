"""Candidates are verified inside the document's project (issue 12).

The Completer splices each candidate into the document and verifies it with the
document's file path: the module is imported under its package name (relative imports
work) with the project's interpreter (its `.venv`, or the ``pythonPath`` setting).
A real Completer, a real sandbox, a real virtual environment; the model is a stub
that returns fixed bodies (the model is not what is tested here).
"""

from __future__ import annotations

import subprocess
import venv
from pathlib import Path

import pytest

from model_runtime import Generation, GenerationRequest
from model_runtime.types import EngineInfo
from phi_lsp.completion import Completer
from phi_lsp.documents import Document
from phi_lsp.settings import Settings
from phi_lsp.verify import project as project_mod

CART = '''\
from .helpers import cents
import pricing


def total(prices):
    """Sum, in cents.

    >>> total(["1.50", "2.75"])
    425
    """
<BLANK4>
'''.replace("<BLANK4>", "    ")
CURSOR = (10, 4)  # the indented empty line after the docstring


class Bodies:
    """An engine stub: seed -> body."""

    def __init__(self, bodies: dict[int | None, str]) -> None:
        self.bodies = bodies
        self.info = EngineInfo(spec="stub", source="stub", backend="stub")

    def count_tokens(self, text: str) -> int:
        return len(text) // 3

    def generate(self, request: GenerationRequest, should_stop=None) -> Generation:  # type: ignore[no-untyped-def]
        return Generation(request.forced_prefix + self.bodies[request.seed], "eos")

    def close(self) -> None:
        pass


def make_project(root: Path) -> Path:
    (root / "src/shop").mkdir(parents=True)
    (root / "pyproject.toml").write_text("[project]\nname = 'shop'\n")
    (root / "src/shop/__init__.py").write_text("")
    (root / "src/shop/helpers.py").write_text(
        "def cents(text):\n    whole, frac = text.split('.')\n    return int(whole) * 100 + int(frac)\n"
    )
    (root / "src/shop/cart.py").write_text(CART)
    # `pricing` exists only in the project's .venv, not in phi-lsp's environment.
    venv.EnvBuilder(with_pip=False, symlinks=True).create(root / ".venv")
    site = Path(
        subprocess.run(
            [root / ".venv/bin/python", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()
    )  # fmt: skip
    (site / "pricing.py").write_text("def add(xs):\n    return sum(xs)\n")
    return root / "src/shop/cart.py"


def test_a_candidate_with_relative_imports_and_a_venv_dependency_is_verified(
    tmp_path: Path,
) -> None:
    project_mod.forget_interpreters()
    path = make_project(tmp_path)
    engine = Bodies(
        {
            None: "return pricing.add(cents(p) for p in prices) + 1",  # wrong on purpose
            1: "return pricing.add(cents(p) for p in prices)",
        }
    )
    doc = Document(CART, uri=path.as_uri())
    c = Completer(engine, Settings(verify="require", candidates=2)).complete(doc, *CURSOR)
    assert c is not None, "no candidate passed: the module was not imported in its project"
    assert (c.text, c.status, c.verified) == (
        "return pricing.add(cents(p) for p in prices)",
        "passed",
        True,
    )
    assert c.candidates_tried == 2
    # The same document without its path cannot import `.helpers`: nothing passes.
    lost = Completer(engine, Settings(verify="prefer", candidates=2)).complete(CART, *CURSOR)
    assert lost is not None and lost.status == "error"


def test_the_python_path_setting_reaches_verification(tmp_path: Path) -> None:
    project_mod.forget_interpreters()
    path = make_project(tmp_path)
    engine = Bodies({None: "return pricing.add(cents(p) for p in prices)"})
    doc = Document(CART, uri=path.as_uri())
    settings = Settings(verify="prefer", python_path=str(tmp_path / "no/such/python"))
    c = Completer(engine, settings).complete(doc, *CURSOR)
    assert c is not None and c.status == "error" and c.verified is False


def test_workspace_folders_are_the_root_when_no_marker_is_found(tmp_path: Path) -> None:
    project_mod.forget_interpreters()
    path = make_project(tmp_path)
    (tmp_path / "pyproject.toml").unlink()  # no marker: only the workspace folder tells
    engine = Bodies({None: "return pricing.add(cents(p) for p in prices)"})
    doc = Document(CART, uri=path.as_uri())
    completer = Completer(engine, Settings(verify="require"))
    if any((p / m).exists() for p in tmp_path.parents for m in project_mod.ROOT_MARKERS):
        pytest.skip("a project marker above the temp dir would be the root")
    assert completer.complete(doc, *CURSOR) is None  # phi-lsp's own Python: no `pricing`
    completer.workspace_roots = (str(tmp_path),)
    c = completer.complete(doc, *CURSOR)
    assert c is not None and c.verified is True
