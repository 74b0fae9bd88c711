"""Where a file lives: its project, the project's Python, and how pytest would import it.

``resolve(path)`` answers, for one file (or ``None``: an unsaved buffer):

- the project root: the nearest folder upward holding ``pyproject.toml``, ``setup.cfg``,
  ``setup.py`` or ``.git``, else the innermost LSP workspace folder holding the file;
- the interpreter examples run with: ``--python``/``pythonPath``, else the
  ``VIRTUAL_ENV`` phi-lsp was started in, else ``.venv/`` or ``venv/`` at the project
  root, else phi-lsp's own; its ``sys.path`` is asked once per interpreter and cached;
- the module's dotted name and package root as ``pytest --doctest-modules`` finds them
  (``_pytest/pathlib.py``: walk up the ``__init__.py`` folders; namespace packages when
  the project sets ``consider_namespace_packages``; else the file's folder and its stem);
- pytest's configuration as pytest locates it (``pytest.ini``, ``pyproject.toml``
  ``[tool.pytest.ini_options]``, ``tox.ini`` ``[pytest]``, ``setup.cfg``
  ``[tool:pytest]``): ``doctest_optionflags`` (pytest's default: ``ELLIPSIS``),
  ``pythonpath`` and ``consider_namespace_packages``.

A missing or broken interpreter raises :class:`ProjectError` with one line naming it.
"""

from __future__ import annotations

import configparser
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from phi_lsp.verify.compare import PYTEST_DEFAULT_FLAGS

ROOT_MARKERS = ("pyproject.toml", "setup.cfg", "setup.py", ".git")
DEFAULT_OPTIONFLAGS = PYTEST_DEFAULT_FLAGS  # no doctest_optionflags set: pytest's default
SCRIPT_MODULE = "__phi_verify__"  # the module name of an unsaved buffer
MIN_VERSION = (3, 9)
_PROBE_TIMEOUT_S = 20.0
# Printed by the interpreter under question: its import path and version.
_PROBE = (
    "import json, sys; print(json.dumps({'path': sys.path, 'version': list(sys.version_info[:3]),"
    " 'executable': sys.executable}))"
)


class ProjectError(Exception):
    """The project's interpreter cannot be used; the message is one line naming it."""


@dataclass(frozen=True)
class Project:
    root: str | None  # None: an unsaved buffer outside any workspace
    python: str  # the interpreter's path as found (a venv's bin/python, not resolved)
    python_reason: str  # --python/pythonPath | VIRTUAL_ENV | .venv | venv | phi-lsp's own
    python_version: str  # "3.11.7"
    package_root: str | None  # goes first on sys.path (pytest's prepend import mode)
    module_name: str  # "app.text"; "__phi_verify__" for an unsaved buffer
    package: str  # "app"; "" for a top-level module
    sys_path: tuple[str, ...]  # package root, pytest's pythonpath, the interpreter's own
    optionflags: tuple[str, ...]  # doctest_optionflags names
    config: str | None = None  # the pytest config file read, if any
    file: str | None = None  # the module's absolute path (None: an unsaved buffer)

    def describe(self) -> dict:
        """The ``python`` object of ``phi-lsp verify --json``."""
        return {
            "path": self.python,
            "reason": self.python_reason,
            "version": self.python_version,
        }

    def job(self, source: str, function: str, examples: Sequence[dict]) -> dict:
        """The job fields of contract §3 that come from the project (the sandbox adds
        ``nonce``, ``limits`` and ``timeout_s``): what ``_exec.run`` imports and runs."""
        return {
            "sys_path": list(self.sys_path),
            "module_name": self.module_name,
            "package": self.package,
            "path": self.file,
            "source": source,
            "function": function,
            "examples": [dict(e) for e in examples],
        }

    def as_dict(self) -> dict:
        d = asdict(self)
        d["sys_path"] = list(self.sys_path)
        d["optionflags"] = list(self.optionflags)
        return d


# --- interpreter -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Interpreter:
    path: tuple[str, ...]
    version: tuple[int, ...]


_probed: dict[str, _Interpreter] = {}
_probe_lock = threading.Lock()


def _venv_python(env_dir: Path) -> Path:
    for rel in ("bin/python", "bin/python3", "Scripts/python.exe"):
        if (env_dir / rel).exists():
            return env_dir / rel
    return env_dir / "bin/python"


def _choose_python(
    explicit: str | None, root: Path | None, environ: dict[str, str]
) -> tuple[str, str]:
    if explicit:
        found = explicit.strip()
        if os.sep not in found and not Path(found).exists():
            found = shutil.which(found) or found  # "python3.12": a command on PATH
        p = Path(found).expanduser()
        if p.is_dir():  # a virtual environment's folder
            p = _venv_python(p)
        return str(p if p.is_absolute() else p.absolute()), "--python/pythonPath"
    venv = environ.get("VIRTUAL_ENV", "").strip()
    if venv:
        return str(_venv_python(Path(venv))), "VIRTUAL_ENV"
    if root is not None:
        for name in (".venv", "venv"):
            if (root / name / "pyvenv.cfg").is_file():
                return str(_venv_python(root / name)), name
    return sys.executable, "phi-lsp's own"


def _probe(python: str, reason: str) -> _Interpreter:
    """The interpreter's own sys.path and version, asked once per interpreter path."""
    with _probe_lock:
        known = _probed.get(python)
    if known is not None:
        return known
    who = f"the project's Python {python} ({reason})"
    if not os.path.exists(python):
        raise ProjectError(f"{who} does not exist")
    if os.path.isdir(python) or not os.access(python, os.X_OK):
        raise ProjectError(f"{who} is not an executable file")
    try:
        proc = subprocess.run(
            [python, "-c", _PROBE],
            capture_output=True,
            text=True,
            timeout=_PROBE_TIMEOUT_S,
            cwd=tempfile.gettempdir(),  # not the project: -c puts the cwd on sys.path
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise ProjectError(f"{who} did not answer within {_PROBE_TIMEOUT_S:g} s") from None
    except OSError as e:
        raise ProjectError(f"{who} cannot run: {e.strerror or e}") from None
    info = None
    if proc.returncode == 0:
        try:
            info = json.loads(proc.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            info = None
    if not isinstance(info, dict):
        lines = [x.strip() for x in proc.stderr.splitlines() if x.strip()]
        # A traceback ends with its error; anything else (a shim, a loader) starts with it.
        why = next((x for x in reversed(lines) if "Error" in x), None)
        why = why or (lines[0] if lines else f"exit code {proc.returncode}")
        raise ProjectError(f"{who} is broken: {why[:200]}")
    version = tuple(int(v) for v in info.get("version", (0,)))
    if version < MIN_VERSION:
        shown = ".".join(map(str, version))
        raise ProjectError(f"{who} is Python {shown}; verification needs 3.9 or later")
    tmp = tempfile.gettempdir()
    paths = tuple(
        p
        for p in info.get("path", [])
        if isinstance(p, str) and p and os.path.isabs(p) and p != tmp
    )
    found = _Interpreter(paths, version)
    with _probe_lock:
        _probed[python] = found
    return found


def forget_interpreters() -> None:
    """Ask each interpreter again next time (a package was installed meanwhile)."""
    with _probe_lock:
        _probed.clear()


# --- project root and pytest's config ----------------------------------------------------


def find_root(start: Path, workspace_roots: Iterable[str] = ()) -> Path | None:
    for d in (start, *start.parents):
        if any((d / m).exists() for m in ROOT_MARKERS):
            return d
    inside = [
        Path(w).resolve()
        for w in workspace_roots
        if w and (start == Path(w).resolve() or Path(w).resolve() in start.parents)
    ]
    return max(inside, key=lambda p: len(p.parts)) if inside else None


def _read_ini(path: Path, section: str) -> dict[str, str] | None:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, OSError, UnicodeDecodeError):
        return None
    if not parser.has_section(section):
        return None
    return dict(parser.items(section))


def _read_toml(path: Path) -> dict | None:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        try:
            import tomli as tomllib
        except ImportError:
            return None
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None


def _load_config(path: Path) -> dict | None:
    """pytest's options in one config file, or None when it holds none (pytest's rules:
    ``findpaths.CONFIG_LOADERS_BY_NAME``)."""
    name = path.name
    if name in ("pytest.ini", ".pytest.ini"):
        return _read_ini(path, "pytest") or {}
    if name == "tox.ini":
        return _read_ini(path, "pytest")
    if name == "setup.cfg":
        return _read_ini(path, "tool:pytest")
    doc = _read_toml(path)
    if doc is None:
        return None
    if name in ("pytest.toml", ".pytest.toml"):
        table = doc.get("pytest")
        return table if isinstance(table, dict) else {}
    tool = doc.get("tool", {}).get("pytest")
    if not isinstance(tool, dict):
        return None
    native = {k: v for k, v in tool.items() if k != "ini_options"}
    if native:
        return native
    ini = tool.get("ini_options")
    return ini if isinstance(ini, dict) else None


_CONFIG_NAMES = (
    "pytest.toml",
    ".pytest.toml",
    "pytest.ini",
    ".pytest.ini",
    "pyproject.toml",
    "tox.ini",
    "setup.cfg",
)


def locate_config(start: Path) -> tuple[Path | None, dict]:
    """The first pytest config file upward from ``start`` and its options."""
    for d in (start, *start.parents):
        for name in _CONFIG_NAMES:
            p = d / name
            if p.is_file():
                cfg = _load_config(p)
                if cfg is not None:
                    return p, cfg
    return None, {}


def _as_args(value: object) -> list[str]:
    if isinstance(value, str):
        try:
            return shlex.split(value)
        except ValueError:
            return value.split()
    if isinstance(value, list):
        return [str(v) for v in value]
    return []


def _as_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("1", "true", "yes", "on", "y", "t")


# --- module name (pytest's import_path, prepend mode) ------------------------------------


def _package_path(file: Path) -> Path | None:
    """The top folder of the regular package holding ``file`` (``resolve_package_path``)."""
    result = None
    for parent in file.parents:
        if not (parent / "__init__.py").is_file() or not parent.name.isidentifier():
            break
        result = parent
    return result


def _module_name(root: Path, file: Path) -> str:
    try:
        rel = file.with_suffix("").relative_to(root)
    except ValueError:
        return ""
    parts = list(rel.parts)
    if parts and parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts) if parts and all(p.isidentifier() for p in parts) else ""


def _pkg_root_and_name(
    file: Path, namespace_packages: bool, importable_roots: set[str]
) -> tuple[Path, str]:
    pkg = _package_path(file)
    pkg_root = pkg.parent if pkg is not None else None
    if namespace_packages:
        # pytest asks importlib whether the dotted name finds this file; that holds when
        # the candidate folder is on the import path.
        start = pkg_root if pkg_root is not None else file.parent
        for candidate in (start, *start.parents):
            name = _module_name(candidate, file)
            if name and str(candidate) in importable_roots:
                pkg_root = candidate
                break
    if pkg_root is not None:
        name = _module_name(pkg_root, file)
        if name:
            return pkg_root, name
    # Not in a package: the file's folder on sys.path, imported by its stem.
    stem = file.stem
    if not stem.isidentifier() or stem in sys.stdlib_module_names:
        stem = SCRIPT_MODULE  # a script named like a stdlib module must not replace it
    return file.parent, stem


def _conftest_roots(file: Path, rootdir: Path | None) -> list[str]:
    """Folders pytest puts on sys.path when it imports the conftest.py files above the
    file (prepend mode: each conftest's package root), from the rootdir down."""
    out: list[str] = []
    if rootdir is None:
        return out
    dirs = [d for d in (file.parent, *file.parents) if d == rootdir or rootdir in d.parents]
    for d in reversed(dirs):
        conftest = d / "conftest.py"
        if conftest.is_file():
            pkg = _package_path(conftest)
            out.append(str(pkg.parent if pkg is not None else d))
    return out


def resolve(
    path: str | os.PathLike[str] | None,
    *,
    python: str | None = None,
    workspace_roots: Sequence[str] = (),
    environ: dict[str, str] | None = None,
) -> Project:
    """The project of ``path`` (a file, saved or not; None: an unsaved buffer)."""
    env = dict(os.environ if environ is None else environ)
    file = Path(path).absolute() if path else None
    if file is not None:
        file = Path(os.path.normpath(file))
    start = file.parent if file is not None else None
    root = find_root(start, workspace_roots) if start is not None else None
    if root is None and file is None:
        cwd_roots = [w for w in workspace_roots if w]
        root = Path(cwd_roots[0]).resolve() if len(cwd_roots) == 1 else None
    interpreter, reason = _choose_python(python, root, env)
    info = _probe(interpreter, reason)
    version = ".".join(map(str, info.version))
    if file is None:
        return Project(
            root=str(root) if root else None,
            python=interpreter,
            python_reason=reason,
            python_version=version,
            package_root=None,
            module_name=SCRIPT_MODULE,
            package="",
            sys_path=info.path,
            optionflags=DEFAULT_OPTIONFLAGS,
        )
    config_path, cfg = locate_config(file.parent)
    config_dir = config_path.parent if config_path is not None else None
    flags = _as_args(cfg.get("doctest_optionflags")) if "doctest_optionflags" in cfg else []
    optionflags = tuple(flags) if "doctest_optionflags" in cfg else DEFAULT_OPTIONFLAGS
    extra = [
        str((config_dir / p).resolve()) if config_dir else p
        for p in _as_args(cfg.get("pythonpath", []))
    ]
    extra += _conftest_roots(file, config_dir or root)
    namespace = _as_bool(cfg.get("consider_namespace_packages", False))
    pkg_root, module = _pkg_root_and_name(file, namespace, {*extra, *info.path})
    package = module if file.name == "__init__.py" else module.rpartition(".")[0]
    sys_path = tuple(dict.fromkeys([str(pkg_root), *extra, *info.path]))
    return Project(
        root=str(root) if root else None,
        python=interpreter,
        python_reason=reason,
        python_version=version,
        package_root=str(pkg_root),
        module_name=module,
        package=package if module != SCRIPT_MODULE else "",
        sys_path=sys_path,
        optionflags=optionflags,
        config=str(config_path) if config_path else None,
        file=str(file),
    )
