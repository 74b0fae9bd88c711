"""The real server verifies suggestions inside the document's project (issue 12).

A package module with relative imports and a dependency installed only in the project's
`.venv`: with ``verify: prefer`` the suggestion reaches the client verified. A missing
``pythonPath`` makes verification an error that names the interpreter while the
suggestion still arrives (the editor stays usable). Replay model, real server over
stdio, real sandbox, real venv.
"""

from __future__ import annotations

import subprocess
import venv
from pathlib import Path

from lsprotocol import types
from test_server_e2e import replay_model, server

CART = '''\
import pricing

from .helpers import cents


def total(prices):
    """Sum, in cents.

    >>> total(["1.50", "2.75"])
    425
    """
'''
CURSOR = types.Position(line=11, character=4)
BODY = "return pricing.add(cents(p) for p in prices)\n"


def make_project(root: Path) -> Path:
    (root / "src/shop").mkdir(parents=True)
    (root / "pyproject.toml").write_text("[project]\nname = 'shop'\n")
    (root / "src/shop/__init__.py").write_text("")
    (root / "src/shop/helpers.py").write_text(
        "def cents(text):\n    whole, frac = text.split('.')\n    return int(whole) * 100 + int(frac)\n"
    )
    path = root / "src/shop/cart.py"
    path.write_text(CART + "    \n")
    venv.EnvBuilder(with_pip=False, symlinks=True).create(root / ".venv")
    purelib = subprocess.run(
        [str(root / ".venv/bin/python"), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    (Path(purelib) / "pricing.py").write_text("def add(xs):\n    return sum(xs)\n")
    return path


async def test_a_suggestion_in_a_package_module_arrives_verified(tmp_path: Path) -> None:
    path = make_project(tmp_path / "proj")
    opts = {"model": replay_model(tmp_path, BODY), "verify": "prefer"}
    env = {"VIRTUAL_ENV": ""}  # the project's .venv, not an environment the test ran in
    async with server(tmp_path, opts, env=env) as s:
        await s.ready()
        uri = path.as_uri()
        s.open(uri, CART + "    \n")
        items = await s.inline(uri, CURSOR, timeout=60)
        assert items and items[0].insert_text.strip() == BODY.strip()
        note = await s.until(lambda: s.verifications and s.verifications[-1], 30)
        assert (note["uri"], note["status"], note["passed"]) == (uri, "passed", 1), note


async def test_a_missing_python_path_is_an_error_and_the_suggestion_still_arrives(
    tmp_path: Path,
) -> None:
    path = make_project(tmp_path / "proj")
    missing = tmp_path / "no/such/python"
    opts = {
        "model": replay_model(tmp_path, BODY),
        "verify": "prefer",
        "pythonPath": str(missing),
    }
    async with server(tmp_path, opts, env={"VIRTUAL_ENV": ""}) as s:
        await s.ready()
        uri = path.as_uri()
        s.open(uri, CART + "    \n")
        items = await s.inline(uri, CURSOR, timeout=60)
        assert items and items[0].insert_text.strip() == BODY.strip()
        note = await s.until(lambda: s.verifications and s.verifications[-1], 30)
        assert note["status"] == "error", note
        # Still answering: the next request is served as usual.
        assert await s.inline(uri, CURSOR, timeout=60)
