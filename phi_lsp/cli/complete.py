"""``phi-lsp complete FILE``: fill function bodies headless (diff, JSON or in place)."""

from __future__ import annotations

import argparse
import contextlib
import difflib
import json
import os
import sys
import tempfile
from pathlib import Path

from phi_lsp.cli.errors import UsageError, report
from phi_lsp.cli.flags import add_model_flags
from phi_lsp.settings import Settings
from phi_lsp.settings import parse as parse_settings

NAME = "complete"
PYTHON_SUFFIXES = (".py", ".pyw")
DEFAULT_VERIFY_CANDIDATES = 4  # --verify without --candidates


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    c = sub.add_parser(NAME, help="fill function bodies in a file, headless")
    c.add_argument("file")
    where = c.add_mutually_exclusive_group()
    where.add_argument("--line", type=int, help="the function at this line (1-based)")
    where.add_argument(
        "--at", metavar="LINE:COL", help="complete at a cursor (1-based) as an editor would"
    )
    where.add_argument(
        "--function", metavar="NAME", help="the function of this name (Class.method works)"
    )
    where.add_argument("--all", action="store_true", help="every function whose body is empty")
    add_model_flags(c)
    c.add_argument("--max-new-tokens", type=int, default=None)
    c.add_argument(
        "--verify", action="store_true", help="run the docstring's examples on each candidate"
    )
    c.add_argument("--candidates", type=int, default=None, help="candidates to try with --verify")
    c.add_argument("--temperature", type=float, default=None)
    c.add_argument("--seed", type=int, default=0)
    c.add_argument(
        "--python",
        default=None,
        metavar="PATH",
        help="the project's interpreter for --verify (default: $VIRTUAL_ENV, ./.venv, ./venv, "
        "phi-lsp's own)",
    )
    out = c.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="one JSON object on stdout")
    out.add_argument("--diff", action="store_true", help="a unified diff (the default)")
    out.add_argument("--write", action="store_true", help="replace the file atomically")


def read_python(path: Path) -> tuple[bytes, str]:
    """The file's bytes and text; UsageError for anything that is not a Python text file."""
    if not path.exists():
        raise UsageError(f"{path}: no such file")
    if path.is_dir():
        raise UsageError(f"{path}: is a directory, not a Python file")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise UsageError(f"{path}: cannot read: {e.strerror or e}") from None
    if b"\0" in data:
        raise UsageError(f"{path}: binary file, not Python source")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UsageError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    if path.suffix == ".pyi":
        raise UsageError(f"{path}: a stub file (.pyi): its bodies are meant to be empty")
    first = text.split("\n", 1)[0]
    if path.suffix not in PYTHON_SUFFIXES and not (first.startswith("#!") and "python" in first):
        raise UsageError(f"{path}: not a Python file (expected {', '.join(PYTHON_SUFFIXES)})")
    return data, text


def parse_at(at: str) -> tuple[int, int]:
    """``--at LINE:COL`` (1-based) as a pair."""
    try:
        ln, col = (int(x) for x in at.split(":"))
    except ValueError:
        raise UsageError(f"--at wants LINE:COL (1-based), got {at!r}") from None
    if ln < 1 or col < 1:
        raise UsageError(f"--at LINE:COL is 1-based, got {ln}:{col}")
    return ln, col


def settings_from_args(args: argparse.Namespace) -> Settings:
    raw = {
        "model": args.model,
        "device": args.device,
        "dtype": args.dtype,
        "maxNewTokens": args.max_new_tokens,
        "temperature": args.temperature,
        "candidates": args.candidates,
        "remoteModel": args.remote_model,
        "apiKeyEnv": args.api_key_env,
        "caBundle": getattr(args, "ca_bundle", None),
        "pythonPath": getattr(args, "python", None),
    }
    if args.verify:
        # "prefer": every record says how its examples went; --write then keeps only
        # the passing ones (never writes an unverified body).
        raw["verify"] = "prefer"
        if args.candidates is None:
            raw["candidates"] = DEFAULT_VERIFY_CANDIDATES
    s, warnings = parse_settings(raw)
    if warnings:
        # Flags are the user's words: name them as flags.
        raise UsageError(
            warnings[0].replace("phiLsp.", "--").replace("maxNewTokens", "max-new-tokens")
        )
    return s


class _Progress:
    """``--all`` progress on stderr: a bar on a terminal, one line per function otherwise."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()

    def __call__(self, done: int, n: int, name: str) -> None:
        if self.tty:
            width = 24
            bar = "#" * (width * done // max(n, 1))
            what = f"{done + 1}/{n} {name}" if done < n else f"{n}/{n} done"
            sys.stderr.write(f"\r[{bar:.<{width}}] {what[:50]:<50}")
            if done == n:
                sys.stderr.write("\n")
        elif done < n:
            sys.stderr.write(f"phi-lsp complete: {done + 1}/{n} {name}\n")
        sys.stderr.flush()


def write_atomic(path: Path, original: bytes, text: str) -> None:
    """Replace ``path`` with ``text`` via a temp file in its directory; refuse if the
    file changed since ``original`` was read."""
    data = text.encode("utf-8")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, path.stat().st_mode & 0o7777)
        if path.read_bytes() != original:
            raise UsageError(f"{path}: changed on disk while completing; not written")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def run(args: argparse.Namespace) -> int:
    from model_runtime import GenerationError, ModelLoadError
    from phi_lsp import api, functions
    from phi_lsp.documents import Document

    path = Path(args.file)
    original, source = read_python(path)
    s = settings_from_args(args)
    use_all = args.all or not (args.line or args.at or args.function)
    if args.line is not None and args.line < 1:
        raise UsageError(f"--line is 1-based, got {args.line}")
    at = parse_at(args.at) if args.at is not None else None
    # Check the target before loading a model: bad input answers fast.
    try:
        if at is None:
            functions.select(Document(source), line=args.line, function=args.function, all=use_all)
    except functions.TargetError as e:
        raise UsageError(f"{path}: {e}") from None
    if s.verify != "off":
        # The project's interpreter before the model: missing or broken, nothing runs.
        from phi_lsp.verify.project import ProjectError, resolve

        try:
            resolve(path, python=s.python_path or None)
        except ProjectError as e:
            raise UsageError(str(e)) from None
    # A first run downloads or builds the model: say so on stderr (a step that takes
    # under 2 s, like loading a small cached model, stays quiet).
    from model_runtime.progress import TerminalProgress

    steps = TerminalProgress(sys.stderr, delay_s=2.0)
    try:
        completer = api.get_completer(s, steps)
    except ModelLoadError as e:
        steps.close()
        raise UsageError(f"--model {s.model}: {e}") from None
    steps.close()
    try:
        new, records = api.fill(
            completer,
            source,
            line=args.line,
            at=at,
            function=args.function,
            all=use_all,
            progress=_Progress() if use_all else None,
            path=path,
        )
    except functions.TargetError as e:
        raise UsageError(f"{path}: {e}") from None
    except GenerationError as e:  # the model failed mid-way: nothing is written
        report(NAME, f"the model failed: {e}; {path} is unchanged")
        return 1
    if s.verify != "off" and not args.json:
        for c in records:
            ex = c.examples or {"passed": 0, "failed": 0}
            n = ex["passed"] + ex["failed"]
            report(
                NAME,
                f"{c.function}: {c.status}"
                + (f" {ex['passed']}/{n}" if n else "")
                + f" ({c.candidates_tried} candidate{'s' if c.candidates_tried > 1 else ''})",
            )
    if s.verify != "off" and args.write:
        # Never write an unverified body: keep only the ones whose examples passed.
        for c in records:
            if not c.verified:
                report(NAME, f"{c.function}: not written ({c.status or 'unverified'})")
        new = api.apply(Document(source), [c for c in records if c.verified])
    if args.json:
        out = {
            "file": str(path),
            "model": completer.model_name,
            "completions": [c.as_record() for c in records],
        }
        print(json.dumps(out))
    elif args.write:
        if new != source:
            write_atomic(path, original, new)
        report(NAME, f"{path}: filled {len(records)} function(s)")
    else:
        diff = difflib.unified_diff(
            source.splitlines(keepends=True),
            new.splitlines(keepends=True),
            fromfile=f"a/{path}",
            tofile=f"b/{path}",
        )
        sys.stdout.writelines(diff)
    if not records and not use_all:
        report(NAME, "the model suggested nothing")
        return 1
    if s.verify != "off" and any(c.verified is False for c in records):
        return 1  # like `phi-lsp verify`: some examples fail
    return 0
