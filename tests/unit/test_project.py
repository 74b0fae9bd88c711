"""verify/project.py: the project root, its interpreter, pytest's module names and config.

Real folders, real virtual environments (``venv``, no pip) and real interpreters; the
probe of each interpreter is a real subprocess.
"""

from __future__ import annotations

import os
import stat
import sys
import textwrap
import venv
from pathlib import Path

import pytest

from phi_lsp.verify import project as project_mod
from phi_lsp.verify.project import SCRIPT_MODULE, ProjectError, resolve

PY38 = Path("/root/.pyenv/versions/3.8.18/bin/python")
NO_ENV: dict[str, str] = {"PATH": os.environ.get("PATH", "")}  # no VIRTUAL_ENV


def write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text))


def make_venv(where: Path) -> Path:
    venv.EnvBuilder(with_pip=False, symlinks=True).create(where)
    return where / "bin" / "python"


@pytest.fixture(autouse=True)
def _fresh_probe_cache() -> None:
    project_mod.forget_interpreters()


# --- module names, as pytest's prepend import mode finds them ----------------------------


def test_src_layout_package_module_gets_its_dotted_name_and_package_root(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "pyproject.toml": "[project]\nname = 'app'\n",
            "src/app/__init__.py": "",
            "src/app/sub/__init__.py": "",
            "src/app/sub/mod.py": "",
        },
    )
    p = resolve(tmp_path / "src/app/sub/mod.py", environ=NO_ENV)
    assert (p.root, p.package_root) == (str(tmp_path), str(tmp_path / "src"))
    assert (p.module_name, p.package) == ("app.sub.mod", "app.sub")
    assert p.sys_path[0] == str(tmp_path / "src")
    assert str(tmp_path / "src/app/sub") not in p.sys_path  # never the file's own folder
    init = resolve(tmp_path / "src/app/sub/__init__.py", environ=NO_ENV)
    assert (init.module_name, init.package) == ("app.sub", "app.sub")
    job = p.job("x = 1\n", "f", [{"kind": "doctest", "source": "x\n"}])
    assert job["path"] == str(tmp_path / "src/app/sub/mod.py")
    assert (job["module_name"], job["package"], job["sys_path"]) == (
        "app.sub.mod",
        "app.sub",
        list(p.sys_path),
    )


def test_a_file_outside_packages_is_its_stem_with_its_folder_on_the_path(tmp_path: Path) -> None:
    write(
        tmp_path,
        {".git/HEAD": "", "tools/report.py": "", "tools/numbers.py": "", "my-dir/a.py": ""},
    )
    p = resolve(tmp_path / "tools/report.py", environ=NO_ENV)
    assert (p.module_name, p.package, p.package_root) == ("report", "", str(tmp_path / "tools"))
    # A script named like a stdlib module must not replace the stdlib one in the runner.
    assert resolve(tmp_path / "tools/numbers.py", environ=NO_ENV).module_name == SCRIPT_MODULE
    assert p.root == str(tmp_path)


def test_a_folder_with_a_non_identifier_name_ends_the_package(tmp_path: Path) -> None:
    write(tmp_path, {"setup.py": "", "my-lib/__init__.py": "", "my-lib/pkg/__init__.py": "",
                     "my-lib/pkg/m.py": ""})  # fmt: skip
    p = resolve(tmp_path / "my-lib/pkg/m.py", environ=NO_ENV)
    assert (p.module_name, p.package_root) == ("pkg.m", str(tmp_path / "my-lib"))


def test_namespace_packages_when_the_project_asks_pytest_for_them(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "pyproject.toml": textwrap.dedent(
                """
                [tool.pytest.ini_options]
                consider_namespace_packages = true
                pythonpath = ["src"]
                """
            ),
            "src/acme/tools/__init__.py": "",  # acme: a namespace package (no __init__)
            "src/acme/tools/cut.py": "",
        },
    )
    p = resolve(tmp_path / "src/acme/tools/cut.py", environ=NO_ENV)
    assert (p.module_name, p.package, p.package_root) == (
        "acme.tools.cut",
        "acme.tools",
        str(tmp_path / "src"),
    )
    # Without the option pytest stops at the regular package.
    (tmp_path / "pyproject.toml").write_text("[tool.pytest.ini_options]\npythonpath = ['src']\n")
    assert resolve(tmp_path / "src/acme/tools/cut.py", environ=NO_ENV).module_name == "tools.cut"


def test_an_unsaved_buffer(tmp_path: Path) -> None:
    p = resolve(None, environ=NO_ENV)
    assert (p.module_name, p.package, p.file, p.package_root) == (SCRIPT_MODULE, "", None, None)
    assert p.optionflags == ("ELLIPSIS",)


# --- project root --------------------------------------------------------------------------


def test_root_is_the_nearest_marker_else_the_workspace_folder(tmp_path: Path) -> None:
    write(tmp_path, {"outer/setup.cfg": "", "outer/inner/pyproject.toml": "",
                     "outer/inner/pkg/m.py": "", "ws/deep/m.py": ""})  # fmt: skip
    assert resolve(tmp_path / "outer/inner/pkg/m.py", environ=NO_ENV).root == str(
        tmp_path / "outer/inner"
    )
    ws = resolve(
        tmp_path / "ws/deep/m.py",
        workspace_roots=[str(tmp_path / "elsewhere"), str(tmp_path / "ws")],
        environ=NO_ENV,
    )
    assert ws.root == str(tmp_path / "ws")


# --- the interpreter ----------------------------------------------------------------------


def test_interpreter_order_explicit_virtual_env_dot_venv_venv_own(tmp_path: Path) -> None:
    write(tmp_path, {"pyproject.toml": "", "pkg/__init__.py": "", "pkg/m.py": ""})
    file = tmp_path / "pkg/m.py"
    own = resolve(file, environ=NO_ENV)
    assert (own.python, own.python_reason) == (sys.executable, "phi-lsp's own")
    plain_venv = make_venv(tmp_path / "venv")
    got = resolve(file, environ=NO_ENV)
    assert (got.python, got.python_reason) == (str(plain_venv), "venv")
    dot_venv = make_venv(tmp_path / ".venv")
    got = resolve(file, environ=NO_ENV)
    assert (got.python, got.python_reason) == (str(dot_venv), ".venv")
    assert str(tmp_path / ".venv") in " ".join(got.sys_path)  # its own site-packages
    active = make_venv(tmp_path / "active")
    got = resolve(file, environ={**NO_ENV, "VIRTUAL_ENV": str(tmp_path / "active")})
    assert (got.python, got.python_reason) == (str(active), "VIRTUAL_ENV")
    got = resolve(
        file, python=str(plain_venv), environ={**NO_ENV, "VIRTUAL_ENV": str(tmp_path / "active")}
    )
    assert (got.python, got.python_reason) == (str(plain_venv), "--python/pythonPath")
    # A venv's folder is accepted for its interpreter.
    assert resolve(file, python=str(tmp_path / "venv"), environ=NO_ENV).python == str(plain_venv)
    assert got.describe() == {
        "path": str(plain_venv),
        "reason": "--python/pythonPath",
        "version": ".".join(map(str, sys.version_info[:3])),
    }


def test_the_interpreter_is_asked_once(tmp_path: Path) -> None:
    log = tmp_path / "calls.log"
    wrapper = tmp_path / "python-wrapper"
    wrapper.write_text(f'#!/bin/sh\necho x >> "{log}"\nexec "{sys.executable}" "$@"\n')
    wrapper.chmod(0o755)
    write(tmp_path, {"pyproject.toml": "", "a.py": "", "b.py": ""})
    for name in ("a.py", "b.py", "a.py"):
        assert resolve(tmp_path / name, python=str(wrapper), environ=NO_ENV).python == str(wrapper)
    assert log.read_text().count("x") == 1


def test_a_missing_or_broken_interpreter_is_one_line_naming_it(tmp_path: Path) -> None:
    write(tmp_path, {"pyproject.toml": "", "m.py": ""})
    file = tmp_path / "m.py"
    broken = tmp_path / "broken-python"
    broken.write_text("#!/bin/sh\necho 'ImportError: no module named encodings' >&2\nexit 1\n")
    broken.chmod(0o755)
    not_exec = tmp_path / "not-exec"
    not_exec.write_text("")
    not_exec.chmod(stat.S_IRUSR | stat.S_IWUSR)
    cases = {
        str(tmp_path / "nope/bin/python"): "does not exist",
        str(broken): "is broken: ImportError: no module named encodings",
        str(not_exec): "is not an executable file",
    }
    if PY38.exists():
        cases[str(PY38)] = "is Python 3.8.18; verification needs 3.9 or later"
    for python, why in cases.items():
        with pytest.raises(ProjectError) as e:
            resolve(file, python=python, environ=NO_ENV)
        msg = str(e.value)
        assert "\n" not in msg and python in msg and why in msg, msg
    # A VIRTUAL_ENV that is gone is named as such, not silently replaced.
    with pytest.raises(ProjectError, match=r"\(VIRTUAL_ENV\) does not exist"):
        resolve(file, environ={**NO_ENV, "VIRTUAL_ENV": str(tmp_path / "gone")})


# --- pytest's configuration -------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text", "flags"),
    [
        ("pytest.ini", "[pytest]\ndoctest_optionflags = NORMALIZE_WHITESPACE NUMBER\n",
         ("NORMALIZE_WHITESPACE", "NUMBER")),
        ("pytest.ini", "", ("ELLIPSIS",)),  # a pytest.ini is the config even when empty
        ("pyproject.toml",
         "[tool.pytest.ini_options]\ndoctest_optionflags = ['ELLIPSIS', 'IGNORE_EXCEPTION_DETAIL']\n",
         ("ELLIPSIS", "IGNORE_EXCEPTION_DETAIL")),
        ("pyproject.toml", "[tool.pytest.ini_options]\ndoctest_optionflags = 'NUMBER'\n",
         ("NUMBER",)),
        ("setup.cfg", "[tool:pytest]\ndoctest_optionflags =\n    ALLOW_UNICODE\n    ELLIPSIS\n",
         ("ALLOW_UNICODE", "ELLIPSIS")),
        ("tox.ini", "[tox]\nenvlist = py\n[pytest]\ndoctest_optionflags = ALLOW_BYTES\n",
         ("ALLOW_BYTES",)),
        ("tox.ini", "[tox]\nenvlist = py\n", ("ELLIPSIS",)),  # no [pytest]: not a config
        ("setup.cfg", "[metadata]\nname = x\n", ("ELLIPSIS",)),
    ],
)  # fmt: skip
def test_doctest_optionflags_from_each_config_file(
    tmp_path: Path, name: str, text: str, flags: tuple[str, ...]
) -> None:
    write(tmp_path, {name: text, "pkg/__init__.py": "", "pkg/m.py": ""})
    assert resolve(tmp_path / "pkg/m.py", environ=NO_ENV).optionflags == flags


def test_config_precedence_as_pytest_locates_it(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "pytest.ini": "[pytest]\ndoctest_optionflags = NUMBER\n",
            "pyproject.toml": "[tool.pytest.ini_options]\ndoctest_optionflags = 'ALLOW_BYTES'\n",
            "sub/pyproject.toml": "[project]\nname = 'sub'\n",  # no pytest table: look further up
            "sub/m.py": "",
        },
    )
    p = resolve(tmp_path / "sub/m.py", environ=NO_ENV)
    assert p.optionflags == ("NUMBER",)  # pytest.ini before pyproject.toml in one folder
    assert (p.config, p.root) == (str(tmp_path / "pytest.ini"), str(tmp_path / "sub"))


def test_pythonpath_and_conftest_folders_go_on_the_path(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "pyproject.toml": "[tool.pytest.ini_options]\npythonpath = ['src', 'lib']\n",
            "conftest.py": "",
            "scripts/run.py": "",
        },
    )
    p = resolve(tmp_path / "scripts/run.py", environ=NO_ENV)
    assert p.sys_path[:4] == (
        str(tmp_path / "scripts"),
        str(tmp_path / "src"),
        str(tmp_path / "lib"),
        str(tmp_path),
    )
