"""Python API for scripts: the headless pipeline without a server.

    from phi_lsp import complete_source
    result = complete_source(open("m.py").read(), function="add", model="tiny")
    result["source"]        # the completed text
    result["completions"]   # the same records as ``phi-lsp complete --json``

One engine per (model, device, dtype) is loaded on first use and reused by later
calls in the same process.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from phi_lsp.completion import Completer, Completion
from phi_lsp.documents import Document, index_to_utf16
from phi_lsp.functions import TargetError, select
from phi_lsp.settings import Settings
from phi_lsp.settings import parse as parse_settings

if TYPE_CHECKING:
    from model_runtime.progress import ProgressFn

__all__ = [
    "TargetError",
    "complete_file",
    "complete_source",
    "fill",
    "get_completer",
    "verify_source",
]

# progress(done, total, name of the function now under way; "" when all are done)
Progress = Callable[[int, int, str], None]


def get_completer(settings: Settings, steps: ProgressFn | None = None) -> Completer:
    """The Completer for ``settings.model``, loading the engine once per process (the
    server's loading path: ``phi_lsp.server.models``); ``steps`` hears a first load's
    download / build / load progress (``model_runtime.progress``)."""
    from phi_lsp.server.models import load_completer

    return load_completer(settings, steps)


def _settings(model: str | None, settings: Settings | None, overrides: dict[str, Any]) -> Settings:
    s = settings or Settings()
    if model is not None:
        overrides = {**overrides, "model": model}
    s, warnings = parse_settings(overrides, s)
    if warnings:
        raise ValueError("; ".join(warnings))
    return s


def _parse_at(at: str | tuple[int, int]) -> tuple[int, int]:
    if isinstance(at, str):
        try:
            ln, col = (int(x) for x in at.split(":"))
        except ValueError:
            raise TargetError(f'at wants "LINE:COL" or (line, column), got {at!r}') from None
    else:
        ln, col = at
    if ln < 1 or col < 1:
        raise TargetError(f"at is 1-based (line, column), got {ln}:{col}")
    return ln, col


def fill(
    completer: Completer,
    source: str,
    *,
    line: int | None = None,
    at: str | tuple[int, int] | None = None,
    function: str | None = None,
    all: bool = False,
    progress: Progress | None = None,
    path: str | Path | None = None,
) -> tuple[str, list[Completion]]:
    """Complete ``source``; returns the new text and the records (ranges in ``source``).
    ``path``: the file ``source`` is the text of; verification runs inside its project."""
    doc = Document(source, uri=Path(path).absolute().as_uri() if path else "")
    records: list[Completion] = []
    if at is not None:
        ln, col = _parse_at(at)
        if ln > doc.line_count:
            raise TargetError(f"line {ln} is past the end ({doc.line_count} lines)")
        text = doc.line_text(ln - 1)
        if col - 1 > len(text):
            raise TargetError(f"column {col} is past the end of line {ln} ({len(text)} characters)")
        character = index_to_utf16(text, col - 1)
        if completer_context_missing(doc, ln - 1, character):
            raise TargetError(f"{ln}:{col} is not inside a function body")
        c = completer.complete(doc, ln - 1, character)
        if c is not None:
            records.append(c)
    else:
        targets = select(doc, line=line, function=function, all=all)
        for i, fn in enumerate(targets):
            if progress:
                progress(i, len(targets), fn.qualname)  # i done, this one under way
            c = completer.fill(doc, fn)
            if c is not None:
                records.append(c)
        if progress:
            progress(len(targets), len(targets), "")
    return apply(doc, records), records


def completer_context_missing(doc: Document, line: int, character: int) -> bool:
    from phi_lsp.context import extract

    return extract(doc, doc.offset_at(line, character)) is None


def apply(doc: Document, records: list[Completion]) -> str:
    """The text with each record's ``text`` replacing its ``range`` (non-overlapping)."""
    text = doc.text
    spans = []
    for c in records:
        s, e = c.range["start"], c.range["end"]
        spans.append(
            (
                doc.offset_at(s["line"], s["character"]),
                doc.offset_at(e["line"], e["character"]),
                c.text,
            )
        )
    for start, end, new in sorted(spans, reverse=True):
        text = text[:start] + new + text[end:]
    return text


def complete_source(
    source: str,
    *,
    line: int | None = None,
    at: str | tuple[int, int] | None = None,
    function: str | None = None,
    all: bool = False,
    model: str | None = None,
    settings: Settings | None = None,
    path: str | Path | None = None,
    **setting_overrides: Any,
) -> dict[str, Any]:
    """Fill function bodies of ``source``. Exactly one of line (1-based), at ((line, col),
    1-based), function (``name`` or ``Class.method``) or all=True. Extra keywords are
    settings (``max_new_tokens=64``, ``verify="prefer"``, ``candidates=4`` ...).

    Returns ``{"file": None, "model", "completions": [records], "source": new text}``.
    Raises TargetError for a bad target, ModelLoadError for a bad model spec.
    """
    if sum(x is not None and x is not False for x in (line, at, function, all or None)) != 1:
        raise TargetError("give exactly one of line, at, function or all=True")
    s = _settings(model, settings, setting_overrides)
    completer = get_completer(s)
    new, records = fill(completer, source, line=line, at=at, function=function, all=all, path=path)
    return {
        "file": None,
        "model": completer.model_name,
        "completions": [c.as_record() for c in records],
        "source": new,
    }


def complete_file(path: str | Path, **kwargs: Any) -> dict[str, Any]:
    """``complete_source`` on a file's text (the file is not written); ``file`` is set."""
    p = Path(path)
    result = complete_source(p.read_bytes().decode("utf-8"), path=p, **kwargs)  # keeps CRLF
    result["file"] = str(p)
    return result


def verify_source(
    source: str, function: str | None = None, timeout_s: float = 3.0, **kwargs: Any
) -> Any:
    """Each function's docstring examples run against ``source`` (or only ``function``):
    ``phi_lsp.verify.verify_source``, imported on first use so that completing never
    loads the sandbox."""
    from phi_lsp.verify import verify_source as _verify_source

    return _verify_source(source, function, timeout_s, **kwargs)
