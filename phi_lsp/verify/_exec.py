"""Inside the sandbox: import the module as pytest would and run the examples, raw.

Runs in the *project's* interpreter (started ``-I -S``), after the runner has isolated
itself, so this file uses the standard library only and Python 3.9 syntax and APIs.
It never decides pass or fail: it reports what each example printed, raised or
returned (docs/contracts.md §3) and the host judges (``compare.py``).

Importing as ``pytest --doctest-modules`` does (``_pytest/pathlib.py: import_path``,
prepend mode): ``job["sys_path"]`` (the package root first, then the interpreter's own
path) replaces ``sys.path``; ``importlib.import_module(module_name)`` imports the
parent packages from disk, and a finder placed first on ``sys.meta_path`` serves the
module itself from ``job["source"]`` (the candidate spliced in) under its dotted name,
with ``__file__``, ``__package__`` and ``__spec__`` as a normal import sets them. The
whole module runs, as an import runs it. Nothing is written: no bytecode, no files.

Examples run as doctest runs one docstring: in order, in one copy of the module's
globals, compiled in ``"single"`` mode with the module's ``__future__`` flags, stdout
captured, ``sys.displayhook`` reset to the default first.
"""

from __future__ import annotations
import __future__

import contextlib
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import linecache
import os
import sys
import traceback
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

# Captured before user code runs: it may patch builtins we rely on afterwards.
_str = str
_repr = repr
_len = len
_isinstance = isinstance
_type = type
_BaseException = BaseException
_KeyboardInterrupt = KeyboardInterrupt
_format_exception_only = traceback.format_exception_only
_displayhook = sys.__displayhook__
_join = "".join

FIELD_CAP = 256 * 1024  # characters of out / exc / value sent per example (the rest counted)
ERROR_CAP = 4000  # characters of a load error


class _Capture:
    """sys.stdout for one example, as doctest's ``_SpoofOut``: text only, and a trailing
    newline added when anything was written. Keeps FIELD_CAP characters, counts the rest."""

    encoding = "utf-8"
    errors = "strict"

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._size = 0
        self.dropped = 0

    def write(self, s: str) -> int:
        if not _isinstance(s, _str):
            raise TypeError("write() argument must be str, not " + _type(s).__name__)
        n = _len(s)
        room = FIELD_CAP - self._size
        if room > 0:
            self._parts.append(s[:room])
            self._size += min(n, room)
        self.dropped += max(0, n - max(room, 0))
        return n

    def writelines(self, lines: list[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        pass

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def getvalue(self) -> str:
        text = _join(self._parts)
        if text and not text.endswith("\n"):
            text += "\n"
        if self.dropped:
            text += "... [" + _str(self.dropped) + " more characters]\n"
        return text


def _cap(text: str, cap: int = FIELD_CAP) -> str:
    if _len(text) > cap:
        return text[:cap] + "... [" + _str(_len(text) - cap) + " more characters]"
    return text


_joins_exception_lines: bool | None = None


def _doctest_joins_lines() -> bool:
    """Whether this interpreter's doctest compares the whole ``format_exception_only``
    text (3.11.7+, 3.12.1+: an exception's notes count) or only its last line (before).
    Asked of doctest itself, once, when an exception's text has several lines."""
    global _joins_exception_lines
    if _joins_exception_lines is None:
        _joins_exception_lines = False
        if sys.version_info >= (3, 11):
            import doctest

            src = "e = ValueError('x'); e.add_note('n'); raise e\n"
            example = doctest.Example(src, "", exc_msg="ValueError: x\nn\n")
            test = doctest.DocTest([example], {}, "probe", None, 0, None)
            runner = doctest.DocTestRunner(verbose=False)
            saved = sys.stdout
            try:
                runner.run(test, out=lambda _s: None, clear_globs=True)
            finally:
                sys.stdout = saved
            _joins_exception_lines = runner.failures == 0
    return _joins_exception_lines


def _exc_text(exc: BaseException) -> str:
    """The exception as the interpreter's doctest compares it with an expected one."""
    try:
        lines = _format_exception_only(_type(exc), exc)
    except _BaseException:
        return _type(exc).__name__ + "\n"
    if _len(lines) <= 1:
        return _join(lines)
    if _isinstance(exc, SyntaxError):
        # doctest compares from the "SyntaxError: ..." line on (no carets, no source line)
        name = _type(exc).__qualname__
        prefixes = (name + ":", _type(exc).__module__ + "." + name + ":")
        for k, line in enumerate(lines):
            if line.startswith(prefixes):
                lines = lines[k:]
                break
    return _join(lines) if _doctest_joins_lines() else lines[-1]


def _error_line(exc: BaseException) -> str:
    """One line for a load error: ``ModuleNotFoundError: No module named 'x'``."""
    try:
        lines = _format_exception_only(_type(exc), exc)
    except _BaseException:
        lines = []
    name = _type(exc).__name__
    line = next((x for x in lines if x.startswith(name)), lines[-1] if lines else name)
    return _cap(line.strip(), ERROR_CAP)


# --- import ------------------------------------------------------------------------------


class _SourceLoader(importlib.abc.Loader):
    """Executes the module from the job's source (never from the file on disk)."""

    def __init__(self, name: str, source: str, filename: str, is_package: bool) -> None:
        self._name = name
        self._source = source
        self._filename = filename
        self._is_package = is_package

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None  # the default module object

    def exec_module(self, module: object) -> None:
        code = compile(self._source, self._filename, "exec", dont_inherit=True)
        exec(code, module.__dict__)  # noqa: S102 - the module under test, inside the sandbox

    def get_source(self, fullname: str) -> str:
        return self._source

    def get_code(self, fullname: str) -> object:
        return compile(self._source, self._filename, "exec", dont_inherit=True)

    def is_package(self, fullname: str) -> bool:
        return self._is_package


class _OneModuleFinder(importlib.abc.MetaPathFinder):
    """Finds exactly one module name: the module under test."""

    def __init__(self, spec: importlib.machinery.ModuleSpec) -> None:
        self._spec = spec

    def find_spec(
        self, fullname: str, path: object = None, target: object = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname == self._spec.name:
            return self._spec
        return None


def _add_site_dirs(paths: list[str]) -> None:
    """``-S`` skipped the ``.pth`` files of site-packages: their path entries are in
    ``sys_path`` already (asked of the interpreter), but import hooks such as editable
    installs' finders are only installed by running them. Done here, inside the sandbox."""
    site_dirs = [p for p in paths if os.path.basename(p) in ("site-packages", "dist-packages")]
    if not site_dirs:
        return
    import site

    known = set(sys.path)
    for d in site_dirs:
        with contextlib.suppress(Exception):  # site itself reports and skips a bad .pth
            site.addsitedir(d, known)


def _import(job: dict) -> object:
    name = job["module_name"]
    source = job["source"]
    path = job.get("path")
    sys.dont_write_bytecode = True  # sibling modules import from disk: no __pycache__
    paths = [p for p in job.get("sys_path", ()) if _isinstance(p, _str) and p]
    if paths:
        sys.path[:] = paths
    _add_site_dirs(paths)
    is_package = path is not None and os.path.basename(path) == "__init__.py"
    filename = path or "<" + name + ">"
    loader = _SourceLoader(name, source, filename, is_package)
    if path:
        spec = importlib.util.spec_from_file_location(
            name,
            path,
            loader=loader,
            submodule_search_locations=[os.path.dirname(path)] if is_package else None,
        )
        if spec is None:  # never with a loader given; checked for the type
            raise ImportError(f"cannot import {path} as {name}")
        # Tracebacks and inspect read the candidate, not the file on disk (mtime None:
        # linecache.checkcache keeps it).
        lines = source.splitlines(True)
        linecache.cache[path] = (_len(source), None, lines, path)
    else:
        spec = importlib.machinery.ModuleSpec(name, loader, origin=None)
    if name in sys.modules:  # only a name the runner itself imported (a stdlib one)
        del sys.modules[name]
    sys.meta_path.insert(0, _OneModuleFinder(spec))
    importlib.invalidate_caches()
    importlib.import_module(name)
    return sys.modules[name]  # as pytest: the module may have replaced itself


# --- examples ----------------------------------------------------------------------------


def _run_example(example: dict, globs: dict, filename: str, flags: int) -> dict:
    out = _Capture()
    exc_text = None
    value_text = None
    kind = example.get("kind")
    saved = sys.stdout
    sys.stdout = out
    try:
        if kind == "call":
            code = compile(example["source"], filename, "eval", flags, True)
            value = eval(code, globs)  # noqa: S307 - inside the sandbox
            try:
                value_text = _repr(value)
            except _KeyboardInterrupt:
                raise
            except _BaseException as e:
                exc_text = _exc_text(e)
        else:
            code = compile(example["source"], filename, "single", flags, True)
            exec(code, globs)  # noqa: S102 - inside the sandbox
    except _KeyboardInterrupt:
        raise
    except _BaseException as e:
        exc_text = _exc_text(e)
    finally:
        sys.stdout = saved
    return {
        "out": out.getvalue(),
        "exc": None if exc_text is None else _cap(exc_text),
        "value": None if value_text is None else _cap(value_text),
    }


def run(job: dict, emit: Callable[[dict], None]) -> None:
    """Import the job's module, then run its examples; report through ``emit``:
    ``{"load": "ok"}`` or ``{"load": "error", "error": str}``, then one
    ``{"i", "out", "exc", "value"}`` per example in order, then ``{"done": True}``."""
    saved = sys.stdout
    sys.stdout = _Capture()  # what the import prints is not an example's output
    try:
        module = _import(job)
        globs = dict(module.__dict__)
    except _KeyboardInterrupt:
        raise
    except _BaseException as e:
        sys.stdout = saved
        emit({"load": "error", "error": _error_line(e)})
        emit({"done": True})
        return
    sys.stdout = saved
    emit({"load": "ok"})
    # doctest: the module's __future__ imports apply to its examples; default displayhook.
    flags = 0
    for feature_name in __future__.all_feature_names:
        feature = getattr(__future__, feature_name)
        flag = feature.compiler_flag  # (read before `is` narrows feature to Optional)
        if globs.get(feature_name) is feature:
            flags |= flag
    sys.displayhook = _displayhook
    test_name = _str(job["module_name"]) + "." + _str(job.get("function") or "")
    for i, example in enumerate(job["examples"]):
        row = _run_example(example, globs, f"<doctest {test_name}[{i}]>", flags)
        emit({"i": i, "out": row["out"], "exc": row["exc"], "value": row["value"]})
    emit({"done": True})
