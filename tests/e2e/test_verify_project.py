"""`phi-lsp verify` inside a real project agrees with `pytest --doctest-modules`.

The test builds an ordinary repository in a temp dir: a src/ layout package with
relative and absolute imports of its own modules, modules named like standard-library
modules (``app/numbers.py``, ``app/types.py``), a dependency installed only in the
project's ``.venv`` (made with ``python -m venv``), a module importing a package that
only phi-lsp's own environment has, a plain folder of scripts, methods, static and class
methods, properties, doctest directives, ``doctest_optionflags`` and ``pythonpath`` in
``pyproject.toml``, and examples that fail on purpose. Then it runs, with no flags and
from an unrelated folder, ``phi-lsp verify FILE --json`` on every file, and pytest in
that ``.venv``; every function's outcome must be the same both ways, read from pytest's
junit XML (nothing hard-coded about which should pass).
"""

from __future__ import annotations

import ast
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

PY39 = Path("/root/.pyenv/versions/3.9.18/bin/python")

FILES = {
    "pyproject.toml": """
        [project]
        name = "app"
        version = "0.1"

        [tool.pytest.ini_options]
        # Replaces pytest's default (ELLIPSIS): "..." needs the directive here.
        doctest_optionflags = ["NORMALIZE_WHITESPACE"]
        pythonpath = ["src"]
        """,
    "src/app/__init__.py": '''
        """The app package (its own doctest is a module item, not a function)."""
        from .recipes import take

        __all__ = ["take"]
        ''',
    "src/app/recipes.py": '''
        from app.numbers import clamp


        def take(n, items):
            """The first n items.

            >>> take(2, [1, 2, 3])
            [1, 2]
            >>> take(clamp(9, 0, 1), "abc")
            ['a']
            """
            return list(items)[:n]


        def chunks(items, size):
            """Wrong on purpose: the last, shorter chunk is lost.

            >>> chunks([1, 2, 3, 4, 5], 2)
            [[1, 2], [3, 4], [5]]
            """
            return [list(items[i : i + size]) for i in range(0, len(items) - size + 1, size)]


        def pieces(items, size):
            return [list(items[i : i + size]) for i in range(0, len(items), size)]


        # Docstrings given after the def, as toolz does: doctest sees them.
        pieces.__doc__ = """
        >>> pieces([1, 2, 3], 2)
        [[1, 2], [3]]
        """


        def documented(f):
            f.__doc__ = f"""
            >>> {f.__name__}(3)
            9
            """
            return f


        @documented
        def square(x):
            return x * x


        @documented
        def cube(x):
            return x**3


        def bits(items, size):
            return chunks(items, size)


        bits.__doc__ = chunks.__doc__
        ''',
    # Named like stdlib modules; `fractions` imports the stdlib's `numbers`.
    "src/app/numbers.py": '''
        import fractions


        def clamp(x, lo, hi):
            """
            >>> clamp(5, 0, 3)
            3
            >>> clamp(fractions.Fraction(1, 3), 0, 1)
            Fraction(1, 3)
            """
            return max(lo, min(x, hi))


        def ratio(a, b):
            """Wrong exception on purpose.

            >>> ratio(1, 0)
            Traceback (most recent call last):
            ...
            ValueError: b must not be zero
            """
            return fractions.Fraction(a, b)
        ''',
    "src/app/types.py": '''
        import enum
        from dataclasses import dataclass


        class Color(enum.Enum):
            RED = 1


        @dataclass
        class Point:
            x: int
            y: int

            def norm1(self):
                """
                >>> Point(3, -4).norm1()
                7
                """
                return abs(self.x) + abs(self.y)

            @property
            def swapped(self):
                """
                >>> Point(1, 2).swapped
                Point(x=2, y=1)
                """
                return Point(self.y, self.x)

            @swapped.setter
            def swapped(self, value):
                self.x, self.y = value.y, value.x

            @classmethod
            def origin(cls):
                """
                >>> Point.origin()
                Point(x=0, y=0)
                """
                return cls(0, 0)

            @staticmethod
            def parse(text):
                """Wrong on purpose: the coordinates come out swapped.

                >>> Point.parse("1,2")
                Point(x=1, y=2)
                """
                a, b = text.split(",")
                return Point(int(b), int(a))

            class Meta:
                @staticmethod
                def kind():
                    """
                    >>> Point.Meta.kind()
                    'point'
                    """
                    return "point"
        ''',
    "src/app/text.py": '''
        """Text helpers.

        >>> slug("A b")
        'a-b'
        """
        import slugdep

        from . import numbers as nums
        from .recipes import take


        def slug(title):
            """
            >>> slug("Hello Big World")
            'hello-big-world'
            """
            return slugdep.slugify(title)


        def initials(name):
            """
            >>> initials("Ada King Lovelace")  # doctest: +ELLIPSIS
            'A...L'
            """
            return "".join(w[0] for w in name.split())


        def upto(n):
            """Fails: the project's doctest_optionflags replace pytest's default ELLIPSIS.

            >>> upto(10)
            [0, 1, ..., 9]
            """
            return list(range(n))


        def pair(a, b):
            """Passes through the project's NORMALIZE_WHITESPACE.

            >>> pair(1, nums.clamp(7, 0, 2))
            (1,     2)
            """
            return (a, b)


        def letters(s):
            """
            >>> letters("abc")  # doctest: +NORMALIZE_WHITESPACE
            ['a',
             'b', 'c']
            >>> letters("xy")  # doctest: -NORMALIZE_WHITESPACE
            ['x',  'y']
            """
            return list(s)


        def double(x):
            """
            >>> double(1)  # doctest: +SKIP
            'never checked'
            >>> double(2)
            4
            """
            return x * 2


        def all_skipped(x):
            """
            >>> all_skipped(1)  # doctest: +SKIP
            999
            """
            return x


        def parse_int(s):
            """
            >>> parse_int("x")  # doctest: +IGNORE_EXCEPTION_DETAIL
            Traceback (most recent call last):
            ...
            ValueError: something else entirely
            """
            return int(s)


        def parse_strict(s):
            """Fails: the same without the directive.

            >>> parse_strict("x")
            Traceback (most recent call last):
            ...
            ValueError: something else entirely
            """
            return int(s)


        def shout(s):
            """Fails: doctest compares text, and the quotes differ.

            >>> shout("a")
            "A!"
            """
            return s.upper() + "!"


        def first(xs):
            """
            >>> first(take(3, "hello"))
            'h'
            """
            return xs[0]


        class Counter:
            """
            >>> Counter().add(2).total
            2
            """

            def __init__(self):
                self.total = 0

            def add(self, n):
                """
                >>> c = Counter()
                >>> c.add(3).add(4).total
                7
                >>> print(c.total)
                7
                """
                self.total += n
                return self

            def broken(self):
                """An unexpected exception, on purpose.

                >>> Counter().broken()
                0
                """
                return 1 // 0
        ''',
    "src/app/sub/__init__.py": "",
    "src/app/sub/deep.py": '''
        from ..recipes import take
        from ..text import initials


        def first_initial(name):
            """
            >>> first_initial("grace hopper")
            'g'
            """
            return take(1, initials(name))[0]


        def last_initial(name):
            """Wrong on purpose.

            >>> last_initial("grace hopper")
            'h'
            """
            return take(1, initials(name))[0]
        ''',
    # Importable by phi-lsp's own interpreter, not by the project's: fails in both.
    "src/app/lsp_bits.py": '''
        import pygls


        def version():
            """
            >>> isinstance(version(), str)
            True
            """
            return pygls.__name__
        ''',
    # Not a package: pytest imports it as `report`, its folder first on sys.path.
    "tools/report.py": '''
        from app.recipes import take


        def top(xs):
            """
            >>> top([3, 1, 2])
            [3]
            """
            return take(1, sorted(xs, reverse=True))


        def bottom(xs):
            """
            >>> bottom([3, 1, 2])
            [2]
            """
            return take(1, sorted(xs))
        ''',
}

SLUGDEP = """
def slugify(text):
    return "-".join(text.lower().split())
"""


def _site_packages(python: Path) -> Path:
    out = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(out.stdout.strip())


def _install_by_copy(dist_name: str, site: Path, done: set[str]) -> None:
    """Install a distribution of this environment into another one's site-packages by
    copying its files (what pip would unpack), with its requirements. No network."""
    from packaging.requirements import Requirement

    key = dist_name.lower().replace("_", "-")
    if key in done:
        return
    done.add(key)
    dist = importlib.metadata.distribution(dist_name)
    base = Path(str(dist.locate_file(""))).resolve()
    for f in dist.files or []:
        src = Path(str(dist.locate_file(f))).resolve()
        if base not in src.parents or "__pycache__" in src.parts or not src.is_file():
            continue
        dst = site / src.relative_to(base)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)
    for spec in dist.requires or []:
        req = Requirement(spec)
        if req.marker is None or req.marker.evaluate({"extra": ""}):
            _install_by_copy(req.name, site, done)


def build_repo(root: Path, base_python: str, *, with_pytest: bool) -> Path:
    for rel, text in FILES.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text).lstrip("\n"))
    subprocess.run(
        [base_python, "-m", "venv", "--without-pip", str(root / ".venv")],
        check=True,
        capture_output=True,
    )
    python = root / ".venv/bin/python"
    site = _site_packages(python)
    (site / "slugdep").mkdir()
    (site / "slugdep/__init__.py").write_text(SLUGDEP)
    info = site / "slugdep-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: slugdep\nVersion: 1.0\n")
    if with_pytest:
        _install_by_copy("pytest", site, set())
    return python


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _files(root: Path) -> Iterator[Path]:
    for p in sorted(root.rglob("*.py")):
        if ".venv" not in p.relative_to(root).parts:
            yield p


def _snapshot(root: Path) -> dict[str, float]:
    return {
        str(p.relative_to(root)): p.stat().st_mtime
        for p in root.rglob("*")
        if ".venv" not in p.relative_to(root).parts
    }


def verify_outcomes(root: Path, phi_lsp_cmd: list[str], cwd: Path) -> tuple[dict, dict]:
    """{qualified function name: status}, and the interpreter each run reported."""
    outcomes: dict[str, str] = {}
    pythons: dict[str, dict] = {}
    for file in _files(root):
        proc = subprocess.run(
            [*phi_lsp_cmd, "verify", str(file), "--json", "--timeout-ms", "10000"],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=cwd,
            env=_clean_env(),
            check=False,
        )
        assert proc.returncode in (0, 1), f"{file}: {proc.stderr}"
        report = json.loads(proc.stdout)
        pythons[str(file)] = report["python"]
        for fn in report["functions"]:
            outcomes[f"{report['module']}.{fn['name']}"] = fn["status"]
    return outcomes, pythons


def pytest_outcomes(root: Path, python: Path, tmp: Path) -> tuple[dict[str, str], list[str]]:
    """{item name: passed|failed|skipped} of the doctest items, and the modules that
    failed to import (collection errors), from pytest's junit XML."""
    xml = tmp / "junit.xml"
    env = {**_clean_env(), "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run(
        [str(python), "-m", "pytest", "--doctest-modules", "--continue-on-collection-errors",
         "-p", "no:cacheprovider", f"--junitxml={xml}", "-q", "-rA", str(root / "src"),
         str(root / "tools")],
        # Not from the project: `python -m` puts the cwd on sys.path, pytest would not.
        capture_output=True, text=True, cwd=tmp, env=env, timeout=300, check=False,
    )  # fmt: skip
    assert xml.exists(), proc.stdout + proc.stderr
    items: dict[str, str] = {}
    broken: list[str] = []
    for case in ET.parse(xml).getroot().iter("testcase"):
        name = case.get("name", "")
        kinds = {child.tag for child in case}
        if "error" in kinds and "collection failure" in (
            case.find("error").get("message", "")  # type: ignore[union-attr]
        ):
            broken.append(name)
            continue
        if "failure" in kinds or "error" in kinds:
            items[name] = "failed"
        elif "skipped" in kinds:
            items[name] = "skipped"
        else:
            items[name] = "passed"
    return items, broken


def _classes_and_modules(root: Path) -> set[str]:
    """Doctest items that are not functions: module and class docstrings."""
    names: set[str] = set()
    for file in _files(root):
        rel = file.relative_to(root)
        parts = list(rel.with_suffix("").parts)
        if parts[0] == "src" or parts[0] == "tools":
            parts = parts[1:]
        if parts[-1] == "__init__":
            parts.pop()
        module = ".".join(parts)
        names.add(module)

        def walk(body: list[ast.stmt], prefix: str, module: str = module) -> None:
            for node in body:
                if isinstance(node, ast.ClassDef):
                    names.add(f"{module}.{prefix}{node.name}")
                    walk(node.body, f"{prefix}{node.name}.")

        walk(ast.parse(file.read_text()).body, "")
    return names


def _module_of(item: str, broken: list[str]) -> str | None:
    for b in broken:  # junit names a collection error by its file: src.app.lsp_bits
        module = re.sub(r"^(src|tools)\.", "", b)
        if item == module or item.startswith(module + "."):
            return b
    return None


def assert_agree(verified: dict[str, str], items: dict[str, str], broken: list[str],
                 not_functions: set[str]) -> None:  # fmt: skip
    failing = {"failed", "error", "timeout"}
    problems = []
    fn_items = {k: v for k, v in items.items() if k not in not_functions}
    for name, outcome in fn_items.items():
        got = verified.get(name)
        if got is None:
            problems.append(f"{name}: pytest {outcome}, phi-lsp never ran it")
        elif outcome == "passed" and got != "passed":
            problems.append(f"{name}: pytest passed, phi-lsp {got}")
        elif outcome == "failed" and got not in failing:
            problems.append(f"{name}: pytest failed, phi-lsp {got}")
        elif outcome == "skipped" and got != "no-examples":
            problems.append(f"{name}: pytest skipped it, phi-lsp {got}")
    for name, got in verified.items():
        if name in fn_items or got == "no-examples":
            continue
        if _module_of(name, broken) is not None:
            if got not in failing:
                problems.append(f"{name}: its module fails to import under pytest, phi-lsp {got}")
            continue
        problems.append(f"{name}: phi-lsp {got}, pytest has no such doctest")
    assert not problems, "\n".join(problems)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("proj")
    base = getattr(sys, "_base_executable", sys.executable)
    return root, build_repo(root, base, with_pytest=True)


@pytest.fixture(scope="module")
def pytest_result(repo: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple:
    root, python = repo
    items, broken = pytest_outcomes(root, python, tmp_path_factory.mktemp("junit"))
    return items, broken


def test_pytest_itself_sees_the_repository_as_designed(pytest_result: tuple) -> None:
    """The comparison below is only worth something if pytest ran real items of every
    kind: passes, failures, a skip, and one module that cannot be imported."""
    items, broken = pytest_result
    outcomes = set(items.values())
    assert outcomes == {"passed", "failed", "skipped"}, items
    assert len(items) >= 25, items
    assert [re.sub(r"^src\.", "", b) for b in broken] == ["app.lsp_bits"], broken


def test_verify_with_no_flags_agrees_with_pytest_on_every_function(
    repo: tuple[Path, Path],
    pytest_result: tuple,
    phi_lsp_cmd: list[str],
    tmp_path: Path,
) -> None:
    root, python = repo
    before = _snapshot(root)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    verified, pythons = verify_outcomes(root, phi_lsp_cmd, elsewhere)
    assert _snapshot(root) == before, "phi-lsp verify wrote into the project"
    for file, used in pythons.items():
        assert (used["path"], used["reason"]) == (str(python), ".venv"), file
    items, broken = pytest_result
    assert_agree(verified, items, broken, _classes_and_modules(root))


@pytest.mark.skipif(not PY39.exists(), reason=f"{PY39} is not installed")
def test_a_python_39_project_venv_agrees_too(
    pytest_result: tuple, phi_lsp_cmd: list[str], tmp_path: Path
) -> None:
    """The same repository with a Python 3.9 `.venv` (pytest 9 no longer runs on 3.9, so
    the items are pytest's outcomes on the identical repository above)."""
    root = tmp_path / "proj39"
    python = build_repo(root, str(PY39), with_pytest=False)
    verified, pythons = verify_outcomes(root, phi_lsp_cmd, tmp_path)
    for used in pythons.values():
        assert (used["path"], used["reason"], used["version"][:4]) == (str(python), ".venv", "3.9.")
    items, broken = pytest_result
    assert_agree(verified, items, broken, _classes_and_modules(root))


def test_a_missing_or_broken_project_interpreter_is_one_line_exit_2(
    phi_lsp_cmd: list[str], tmp_path: Path
) -> None:
    root = tmp_path / "proj"
    (root / "pkg").mkdir(parents=True)
    (root / "pyproject.toml").write_text("")
    (root / "pkg/__init__.py").write_text("")
    marker = tmp_path / "ran"
    # Were anything run, this example would leave a file behind (the sandbox allows /tmp
    # only inside itself, so the check is on the exit code and output instead).
    (root / "pkg/m.py").write_text(
        f'def f():\n    """\n    >>> open({str(marker)!r}, "w").close()\n    """\n'
    )
    (root / ".venv/bin").mkdir(parents=True)
    (root / ".venv/pyvenv.cfg").write_text("home = /nonexistent\n")
    broken = root / ".venv/bin/python"
    broken.symlink_to("/nonexistent/python3")  # a venv whose base Python was removed
    cases = [
        ([], f"the project's Python {broken} (.venv) does not exist"),
        (["--python", str(tmp_path / "nope")], f"{tmp_path / 'nope'} (--python/pythonPath)"),
    ]
    script = tmp_path / "crashing-python"
    script.write_text("#!/bin/sh\necho 'Fatal Python error: init_fs_encoding' >&2\nexit 1\n")
    script.chmod(0o755)
    cases.append((["--python", str(script)], "is broken: Fatal Python error: init_fs_encoding"))
    for flags, expected in cases:
        proc = subprocess.run(
            [*phi_lsp_cmd, "verify", str(root / "pkg/m.py"), *flags],
            capture_output=True, text=True, env=_clean_env(), cwd=tmp_path, timeout=120,
            check=False,
        )  # fmt: skip
        assert proc.returncode == 2, proc
        assert proc.stdout == ""
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and expected in lines[0], proc.stderr
        assert lines[0].startswith("phi-lsp verify: ")
    assert not marker.exists()
