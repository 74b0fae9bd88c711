"""Check code against the examples its own docstring gives.

``verify_function(source, "f", path=...)`` extracts the examples of ``f``
(``examples.py``) and runs them against the module as written, imported the way
``pytest --doctest-modules`` imports the file, with the project's own interpreter
(``project.py``), in a sandboxed child process (``sandbox.py``, ``_exec.py``); the host
judges what came back (``compare.py``).
Blocking: call it from a worker thread (``asyncio.to_thread``), never the event loop;
set ``cancel`` to kill the child. ``deadline`` (a ``time.monotonic()`` value) bounds the
host's work too: extraction stops at it and no example starts after it.
"""

from __future__ import annotations

import ast
import threading
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypedDict

from phi_lsp.verify.examples import Check, ExtractResult, Skipped, extract
from phi_lsp.verify.project import Project, ProjectError, resolve
from phi_lsp.verify.sandbox import Limits, VerifyResult, run_checks, shutdown_pool

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = [
    "Check",
    "ExtractResult",
    "FunctionReport",
    "Limits",
    "MAX_FUNCTIONS_PER_FILE",
    "Project",
    "ProjectError",
    "Skipped",
    "VerifyOptions",
    "VerifyResult",
    "extract",
    "find_function",
    "shutdown_pool",
    "verify_function",
    "verify_source",
]


MAX_FUNCTIONS_PER_FILE = 500  # verify_source checks these; the rest are reported "skipped"


class VerifyOptions(TypedDict, total=False):
    """Where and how examples run: keywords of ``verify_function`` and ``verify_source``,
    all optional."""

    path: str | None  # the module's file: its project and dotted name come from it
    python: str | None  # --python / pythonPath; None: found as project.resolve says
    workspace_roots: Sequence[str]  # the LSP workspace folders
    project: Project | None  # already resolved: path, python, workspace_roots unused then
    cancel: threading.Event | None  # set it to kill the child
    limits: Limits | None
    deadline: float | None  # time.monotonic(): extraction stops, nothing starts, after it


def _checked(options: VerifyOptions) -> VerifyOptions:
    unknown = sorted(set(options) - VerifyOptions.__optional_keys__)
    if unknown:
        raise TypeError(f"unexpected keyword argument(s): {', '.join(unknown)}")
    return options


def _project(options: VerifyOptions) -> Project:
    """The given project, else the one ``path`` is in (ProjectError: no usable Python)."""
    project = options.get("project")
    if project is not None:
        return project
    return resolve(
        options.get("path"),
        python=options.get("python"),
        workspace_roots=options.get("workspace_roots", ()),
    )


def _time_left(deadline: float | None) -> float | None:
    return None if deadline is None else deadline - time.monotonic()


def _expired(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() >= deadline


def _run(
    source: str,
    name: str,
    checks: Sequence[Check],
    timeout_s: float,
    project: Project,
    options: VerifyOptions,
    line_offset: int = 0,
) -> VerifyResult:
    """``run_checks`` in ``project``; the timeout ends at the deadline at the latest."""
    left = _time_left(options.get("deadline"))
    return run_checks(
        source,
        name,
        checks,
        timeout_s if left is None else min(timeout_s, left),
        line_offset=line_offset,
        path=project.file,
        cancel=options.get("cancel"),
        limits=options.get("limits"),
        project=project,
    )


@dataclass
class FunctionReport:
    """One function of ``verify_source``: its name, 1-based ``def`` line and result."""

    name: str
    line: int
    result: VerifyResult

    def as_dict(self) -> dict:
        r = self.result
        return {
            "name": self.name,
            "line": self.line,
            "examples": r.examples,
            "passed": r.passed,
            "failed": r.failed,
            "status": r.status,
            "reason": r.reason,
            "results": r.results,
            "skipped": r.skipped,
            "elapsed_ms": r.elapsed_ms,
        }


FunctionNode = ast.FunctionDef | ast.AsyncFunctionDef


def find_function(tree: ast.Module, name: str) -> FunctionNode | None:
    """``name`` or ``Class.method`` (classes nested to any depth) among top-level defs."""
    *outer, last = name.split(".")
    body = tree.body
    for part in outer:
        cls = next((n for n in body if isinstance(n, ast.ClassDef) and n.name == part), None)
        if cls is None:
            return None
        body = cls.body
    return next(
        (
            n
            for n in body
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == last
        ),
        None,
    )


def _is_accessor(node: FunctionNode) -> bool:
    """``@x.setter`` / ``@x.deleter``: part of the property ``x``, whose docstring (and
    doctest) is its getter's."""
    return any(
        isinstance(d, ast.Attribute) and d.attr in ("setter", "deleter")
        for d in node.decorator_list
    )


def _functions(tree: ast.Module) -> list[tuple[str, FunctionNode]]:
    """Functions, methods, static/class methods and property getters, named as pytest's
    doctest items are (``f``, ``Class.method``, ``Outer.Inner.method``), in file order.
    A name defined twice is the later definition, the one the module ends up with."""
    last = dict(_all_functions(tree))
    return [(q, n) for q, n in _all_functions(tree) if last[q] is n]


def _all_functions(tree: ast.Module) -> list[tuple[str, FunctionNode]]:
    found: list[tuple[str, FunctionNode]] = []

    def walk(body: list[ast.stmt], prefix: str) -> None:
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if not _is_accessor(node):
                    found.append((prefix + node.name, node))
            elif isinstance(node, ast.ClassDef):
                walk(node.body, f"{prefix}{node.name}.")
            elif isinstance(node, ast.If) and not _never_at_import(node.test):
                # `if sys.version_info >= ...: def f` is a module attribute like any other.
                walk(node.body, prefix)
                walk(node.orelse, prefix)
            elif isinstance(node, ast.Try) or type(node).__name__ == "TryStar":
                for part in (node.body, *(h.body for h in node.handlers), node.orelse):  # type: ignore[attr-defined]
                    walk(part, prefix)

    walk(tree.body, "")
    return found


def _never_at_import(test: ast.expr) -> bool:
    """``if __name__ == "__main__"`` and ``if TYPE_CHECKING``: not run when imported."""
    text = ast.unparse(test)
    return ("__name__" in text and "__main__" in text) or text.endswith("TYPE_CHECKING")


def _module_names(tree: ast.Module) -> frozenset[str]:
    """Names the module defines: functions and classes at any depth, imports, and names
    bound at module level. An example calling one of them is not the checked function's
    written under another name (see ``examples.extract``)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).partition(".")[0] for a in node.names)
    stack: list[ast.AST] = list(tree.body)
    while stack:  # module-level bindings; a function's or class's locals are its own
        node = stack.pop()
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif not isinstance(
            node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)
        ):
            stack.extend(ast.iter_child_nodes(node))
    return frozenset(names)


def _out_of_time(name: str, line: int, why: str, skipped: list[dict] | None = None) -> VerifyResult:
    return VerifyResult("timeout", reason=why, function=name, line=line, skipped=skipped or [])


def _params(node: FunctionNode, is_method: bool) -> tuple[list[str], int]:
    a = node.args
    positional = [p.arg for p in (*a.posonlyargs, *a.args)]
    decorators = {ast.unparse(d) for d in node.decorator_list}
    if is_method and "staticmethod" not in decorators and positional:
        positional = positional[1:]  # self / cls
    required = len(positional) - len(a.defaults)
    required += sum(1 for d in a.kw_defaults if d is None)
    return positional + [p.arg for p in a.kwonlyargs], max(required, 0)


def _docstring_node(node: FunctionNode) -> ast.Constant | None:
    if node.body and isinstance(node.body[0], ast.Expr):
        value = node.body[0].value
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            return value
    return None


@dataclass(frozen=True)
class _Doc:
    """A function's docstring as the module ends up with it. ``line``: the 1-based file
    line the text starts on (None: only known at run time; results point at the def)."""

    text: str
    line: int | None


def _assigned_docs(tree: ast.Module, defs: dict[str, FunctionNode]) -> dict[str, _Doc]:
    """``f.__doc__ = "..."`` and ``f.__doc__ = g.__doc__`` (g defined here) at module level:
    what doctest sees instead of the def's own docstring (toolz does this)."""
    found: dict[str, _Doc] = {}
    for node in tree.body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1):
            continue
        target, value = node.targets[0], node.value
        if not (isinstance(target, ast.Attribute) and target.attr == "__doc__"):
            continue
        name = ast.unparse(target.value)
        if name not in defs:
            continue
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            found[name] = _Doc(value.value, value.lineno)
        elif isinstance(value, ast.Attribute) and value.attr == "__doc__":
            source = ast.unparse(value.value)
            doc = found.get(source) or _own_doc(defs.get(source))
            if doc is not None:
                found[name] = doc
    return found


def _own_doc(node: FunctionNode | None) -> _Doc | None:
    doc = _docstring_node(node) if node is not None else None
    return _Doc(str(doc.value), doc.lineno) if doc is not None else None


_DOC_CHUNK = 900  # characters of a docstring per probe value (its repr stays under the cap)


def _runtime_docs(
    source: str,
    names: list[str],
    timeout_s: float,
    project: Project,
    options: VerifyOptions,
) -> dict[str, _Doc]:
    """Docstrings that only exist once the module has run (``f.__doc__ = other.__doc__``,
    ``functools.wraps``), asked of the module in the sandbox: first which names have a
    docstring with ``>>>`` (what pytest collects) and how long it is, then its text in
    pieces. Each answer is a ``call`` example's repr, parsed as a literal on this side."""

    def ask(exprs: list[str]) -> list[object]:
        checks = [Check("call", e, "None", 0) for e in exprs]
        r = _run(source, "__doc__", checks, timeout_s, project, options)
        values: list[object] = []
        for row in r.results:
            try:
                values.append(ast.literal_eval(str(row["got"])))
            except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                values.append(None)
        return values + [None] * (len(exprs) - len(values))

    doc = "(lambda d: (len(d), '>>>' in d) if isinstance(d, str) else None)({}.__doc__)"
    sizes = ask([doc.format(n) for n in names])
    wanted = [
        (n, v[0])
        for n, v in zip(names, sizes, strict=True)
        if isinstance(v, tuple) and len(v) == 2 and v[1] is True and isinstance(v[0], int)
    ]
    if not wanted:
        return {}
    exprs: list[str] = []
    spans: list[tuple[str, int]] = []
    for name, size in wanted:
        for start in range(0, size, _DOC_CHUNK):
            exprs.append(f"{name}.__doc__[{start}:{start + _DOC_CHUNK}]")
        spans.append((name, len(exprs)))
    pieces = ask(exprs)
    found: dict[str, _Doc] = {}
    begin = 0
    for name, end in spans:
        part = pieces[begin:end]
        begin = end
        if all(isinstance(x, str) for x in part):
            found[name] = _Doc("".join(part), None)  # type: ignore[arg-type]
    return found


def _verify_node(
    source: str,
    name: str,
    node: FunctionNode,
    timeout_s: float,
    project: Project,
    options: VerifyOptions,
    *,
    doc: _Doc | None,
    module_names: Collection[str],
) -> VerifyResult:
    t0 = time.perf_counter()
    def_line = node.lineno
    doc = doc or _own_doc(node)
    if doc is None:
        return VerifyResult(
            "no-examples", reason=f"{name} has no docstring", function=name, line=def_line
        )
    params, required = _params(node, "." in name)
    deadline = options.get("deadline")
    found = extract(doc.text, name, params, required, deadline=deadline, module_names=module_names)
    first = doc.line if doc.line is not None else def_line
    skipped = [{"line": first + s.line, "text": s.text, "reason": s.reason} for s in found.skipped]
    if _expired(deadline):
        why = "the time budget ran out before the examples ran"
        return _out_of_time(name, def_line, why, skipped=skipped)
    result = _run(source, name, found.checks, timeout_s, project, options, line_offset=first)
    result.function, result.line, result.skipped = name, def_line, skipped
    if result.status == "no-examples" and skipped:
        result.reason = f"no example could be extracted ({len(skipped)} skipped, see skipped)"
    result.elapsed_ms = round((time.perf_counter() - t0) * 1000, 1)
    return result


def verify_function(
    source: str,
    function_name: str,
    *,
    timeout_s: float = 3.0,
    line: int | None = None,
    **options: Unpack[VerifyOptions],
) -> VerifyResult:
    """Run the docstring examples of ``function_name`` (``f`` or ``Class.method``) as
    defined in ``source``, a whole module, imported as pytest imports the file at
    ``path`` (its package, its siblings from disk, the project's interpreter). The
    source is the file's text with the code to check in it; nothing is written.

    ``line`` (1-based ``def`` line) picks one of several definitions of the same name.
    ``options`` (:class:`VerifyOptions`): ``python`` (``--python``/``pythonPath``) and
    ``workspace_roots`` steer :func:`phi_lsp.verify.project.resolve`, ``project`` is one
    already resolved; past ``deadline`` (a ``time.monotonic()`` value) the result is a
    ``timeout`` and nothing more runs. Never raises for bad input (but an unknown
    keyword): the result says why (an unusable interpreter is an ``error`` naming it).
    """
    _checked(options)
    try:
        tree = ast.parse(source)
    except SyntaxError as e:
        return VerifyResult(
            "error",
            reason=f"the module does not parse: line {e.lineno}: {e.msg}",
            function=function_name,
        )
    candidates = [n for q, n in _all_functions(tree) if q == function_name]
    node = None
    if line is not None:
        node = next((n for n in candidates if n.lineno == line), None)
    node = node or (candidates[-1] if candidates else find_function(tree, function_name))
    if node is None:
        why = f"no function named {function_name}"
        if "." in function_name:
            why += " (nested functions cannot run on their own; methods are Class.method)"
        return VerifyResult("error", reason=why, function=function_name)
    try:
        project = _project(options)
    except ProjectError as e:
        return VerifyResult("error", reason=str(e), function=function_name, line=node.lineno)
    return _verify_node(
        source,
        function_name,
        node,
        timeout_s,
        project,
        options,
        doc=_assigned_docs(tree, dict(_functions(tree))).get(function_name),
        module_names=_module_names(tree),
    )


def verify_source(
    source: str,
    function: str | None = None,
    timeout_s: float = 3.0,
    *,
    max_functions: int = MAX_FUNCTIONS_PER_FILE,
    **options: Unpack[VerifyOptions],
) -> list[FunctionReport]:
    """The examples of every function (top level, methods, static and class methods,
    property getters; as pytest names them), or only ``function``.

    ``options`` as :func:`verify_function`'s. Bounded: the first ``max_functions``
    functions are checked, the rest reported with status ``skipped`` and why; past
    ``deadline`` the functions not yet checked are ``timeout`` without running anything.

    Raises ``SyntaxError`` when ``source`` does not parse, ``LookupError`` when
    ``function`` is not defined in it and :class:`ProjectError` when the project's
    interpreter is missing or broken (before anything runs).
    """
    _checked(options)
    tree = ast.parse(source)
    reports = []
    targets = _functions(tree)
    if function is not None:
        targets = [(q, n) for q, n in targets if q == function]
        if not targets:
            raise LookupError(f"no function named {function}")
    over = targets[max_functions:]
    targets = targets[:max_functions]
    project = _project(options)
    deadline, cancel = options.get("deadline"), options.get("cancel")
    docs = _assigned_docs(tree, dict(_functions(tree)))
    undocumented = [q for q, n in targets if q not in docs and _docstring_node(n) is None]
    if undocumented and ("__doc__" in source or "wraps" in source) and not _expired(deadline):
        # Docstrings made at run time: pytest sees them, so must we (one extra run).
        docs.update(_runtime_docs(source, undocumented, timeout_s, project, options))
    names = _module_names(tree)
    for name, node in targets:
        if cancel is not None and cancel.is_set():
            break
        if _expired(deadline):
            why = "not run: the file's time budget ran out before this function"
            reports.append(FunctionReport(name, node.lineno, _out_of_time(name, node.lineno, why)))
            continue
        result = _verify_node(
            source, name, node, timeout_s, project, options, doc=docs.get(name), module_names=names
        )
        reports.append(FunctionReport(name, node.lineno, result))
    for name, node in over:
        why = (
            f"not verified: only the first {max_functions} functions of a file are; "
            f"`phi-lsp verify --function {name}` checks this one"
        )
        skipped = VerifyResult("skipped", reason=why, function=name, line=node.lineno)
        reports.append(FunctionReport(name, node.lineno, skipped))
    return reports
