"""verify/_exec.py on its own: imports like pytest, runs examples like doctest, raw results.

Each test runs ``_exec.run`` in a real interpreter started ``-I -S`` (as the sandbox
starts it, without the sandbox around it), on a package written to a temp dir, with
phi-lsp's interpreter and, when present, Python 3.9 (the oldest the runner supports).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

EXEC_DIR = Path(__file__).resolve().parents[2] / "phi_lsp" / "verify"
PY39 = Path("/root/.pyenv/versions/3.9.18/bin/python")
DRIVER = """
import json, sys
sys.path.insert(0, sys.argv[1])
import _exec
job = json.loads(sys.stdin.read())
_exec.run(job, lambda message: sys.__stdout__.write(json.dumps(message) + "\\n"))
"""

PYTHONS = [
    pytest.param(sys.executable, id="own"),
    pytest.param(
        str(PY39),
        id="py39",
        marks=pytest.mark.skipif(not PY39.exists(), reason=f"{PY39} is not installed"),
    ),
]


def interpreter_path(python: str) -> list[str]:
    out = subprocess.run(
        [python, "-c", "import json, sys; print(json.dumps(sys.path))"],
        capture_output=True,
        text=True,
        check=True,
        cwd="/",
    )
    return [p for p in json.loads(out.stdout) if p and p != "/"]


def run_job(python: str, job: dict) -> list[dict]:
    proc = subprocess.run(
        [python, "-I", "-S", "-c", DRIVER, str(EXEC_DIR)],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines()]


def write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text))


PACKAGE = {
    "app/__init__.py": "from .text import shout\n",
    "app/recipes.py": "def take(n, xs):\n    return list(xs)[:n]\n",
    # Named like stdlib modules: `fractions` imports the stdlib's `numbers`, which must
    # not become this file (it would, with the file's folder on sys.path).
    "app/numbers.py": "import fractions\nHALF = fractions.Fraction(1, 2)\n",
    "app/text.py": """
        from __future__ import annotations
        from .recipes import take
        from app.numbers import HALF

        def shout(s):
            return s.upper() + "!"
        """,
}


def job_for(root: Path, python: str, module: str, source: str, examples: list) -> dict:
    rel = module.replace(".", "/")
    path = root / (rel + ".py")
    if not path.exists():
        path = root / rel / "__init__.py"
    return {
        "sys_path": [str(root), *interpreter_path(python)],
        "module_name": module,
        "package": module.rpartition(".")[0],
        "path": str(path),
        "source": source,
        "function": "shout",
        "examples": [
            {"kind": kind, "source": src}
            for kind, src in ((e if isinstance(e, tuple) else ("doctest", e)) for e in examples)
        ],
    }


@pytest.mark.parametrize("python", PYTHONS)
def test_imports_under_the_dotted_name_with_relative_imports_and_the_candidate(
    tmp_path: Path, python: str
) -> None:
    write(tmp_path, PACKAGE)
    text = (tmp_path / "app/text.py").read_text()
    candidate = text.replace('return s.upper() + "!"', 'return s.upper() + "?"')
    events = run_job(
        python,
        job_for(
            tmp_path,
            python,
            "app.text",
            candidate,
            [
                "shout('a')\n",
                f"print(__name__, __package__, __spec__.name, __file__ == {str(tmp_path / 'app/text.py')!r})\n",
                "print(HALF, take(2, 'xyz'))\n",
                # The parent's `from .text import shout` got the candidate, not the disk file.
                "import app; print(app.shout is shout, app.shout('b'))\n",
                "import numbers, fractions; print(numbers.__file__.endswith('app/numbers.py'))\n",
                "import inspect; print(inspect.getsource(shout).splitlines()[-1].strip())\n",
            ],
        ),
    )
    assert events[0] == {"load": "ok"}
    outs = [e["out"] for e in events[1:-1]]
    assert outs == [
        "'A?'\n",
        "app.text app app.text True\n",
        "1/2 ['x', 'y']\n",
        "True B?\n",
        "False\n",
        'return s.upper() + "?"\n',
    ]
    assert events[-1] == {"done": True}
    assert not list(tmp_path.rglob("__pycache__")), "nothing may be written to the project"


@pytest.mark.parametrize("python", PYTHONS)
def test_examples_share_globals_and_report_raw_output_exceptions_and_values(
    tmp_path: Path, python: str
) -> None:
    write(tmp_path, PACKAGE)
    source = (tmp_path / "app/text.py").read_text()
    events = run_job(
        python,
        job_for(
            tmp_path,
            python,
            "app.text",
            source,
            [
                "x = shout('hi')\n",
                "x\n",
                "_ + '_'\n",  # doctest keeps the displayhook's `_` between examples
                "print('no newline', end='')\n",
                "int('z')\n",
                "print('before'); 1/0\n",
                "def f(:\n",
                ("call", "take(2, [1, 2, 3])"),
                ("call", "take(None, 5)"),
                "import sys; sys.displayhook = lambda v: print('hooked'); 3\n",
                "4\n",  # the hook set by the example before stays, as in doctest
            ],
        ),
    )
    rows = {e["i"]: e for e in events if "i" in e}
    assert rows[0] == {"i": 0, "out": "", "exc": None, "value": None}
    assert rows[1]["out"] == "'HI!'\n"
    assert rows[2]["out"] == "'HI!_'\n"
    assert rows[3]["out"] == "no newline\n"  # doctest's _SpoofOut adds the newline
    assert rows[4]["exc"] == "ValueError: invalid literal for int() with base 10: 'z'\n"
    assert (rows[5]["out"], rows[5]["exc"]) == ("before\n", "ZeroDivisionError: division by zero\n")
    assert rows[6]["exc"].startswith("SyntaxError: ") and "\n" not in rows[6]["exc"][:-1]
    assert (rows[7]["value"], rows[7]["exc"]) == ("[1, 2]", None)
    assert rows[8]["value"] is None and rows[8]["exc"].startswith("TypeError: ")
    assert rows[9]["out"] == "hooked\n"
    assert rows[10]["out"] == "hooked\n"
    assert len(rows) == 11 and events[-1] == {"done": True}


@pytest.mark.parametrize("python", PYTHONS)
def test_exception_text_is_what_that_interpreters_doctest_compares(
    tmp_path: Path, python: str
) -> None:
    """An exception with a note: 3.11.7+/3.12.1+ doctest compares the message and its
    notes, older versions the last line. What _exec sends must be what doctest of the
    same interpreter compares, so the host's verdict matches a doctest run there."""
    write(tmp_path, PACKAGE)
    raise_note = "e = ValueError('bad'); e.add_note('see docs'); raise e\n"
    if python == str(PY39):
        raise_note = "raise ValueError('bad')\n"
    events = run_job(
        python,
        job_for(tmp_path, python, "app.text", (tmp_path / "app/text.py").read_text(), [raise_note]),
    )
    got = events[1]["exc"]
    check = textwrap.dedent(
        f"""
        import doctest
        ex = doctest.Example({raise_note!r}, '', exc_msg={got!r})
        t = doctest.DocTest([ex], {{}}, 't', None, 0, None)
        r = doctest.DocTestRunner(verbose=False)
        r.run(t, out=lambda s: None)
        print(r.failures)
        """
    )
    proc = subprocess.run([python, "-c", check], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "0", f"doctest of {python} does not accept {got!r}"


@pytest.mark.parametrize("python", PYTHONS)
def test_a_module_that_fails_to_import_is_one_load_error(tmp_path: Path, python: str) -> None:
    write(tmp_path, PACKAGE)
    source = "import not_installed_anywhere\n\ndef shout(s):\n    return s\n"
    events = run_job(python, job_for(tmp_path, python, "app.text", source, ["shout(1)\n"]))
    assert events == [
        {"load": "error", "error": "ModuleNotFoundError: No module named 'not_installed_anywhere'"},
        {"done": True},
    ]


def test_future_flags_of_the_module_apply_to_examples(tmp_path: Path) -> None:
    write(tmp_path, PACKAGE)
    source = "from __future__ import annotations\n\ndef take(n, xs):\n    return xs\n"
    events = run_job(
        sys.executable,
        job_for(
            tmp_path,
            sys.executable,
            "app.recipes",
            source,
            ["def g(x: undefined_name) -> None: pass\n", "g.__annotations__['x']\n"],
        ),
    )
    assert events[1]["exc"] is None
    assert events[2]["out"] == "'undefined_name'\n"


def test_a_package_init_and_an_unsaved_buffer(tmp_path: Path) -> None:
    write(tmp_path, PACKAGE)
    job = job_for(
        tmp_path,
        sys.executable,
        "app",
        "from .recipes import take\nVALUE = 7\n",
        [f"print(__name__, __package__, __path__ == [{str(tmp_path / 'app')!r}], VALUE)\n"],
    )
    events = run_job(sys.executable, job)
    assert events[1]["out"] == "app app True 7\n"
    unsaved = {
        **job,
        "module_name": "__phi_verify__",
        "package": "",
        "path": None,
        "source": "Y = 2\n",
        "examples": [{"kind": "doctest", "source": "print(__name__, Y)\n"}],
    }
    events = run_job(sys.executable, unsaved)
    assert events[1]["out"] == "__phi_verify__ 2\n"


def test_outputs_are_capped_and_counted(tmp_path: Path) -> None:
    write(tmp_path, PACKAGE)
    events = run_job(
        sys.executable,
        job_for(
            tmp_path,
            sys.executable,
            "app.text",
            textwrap.dedent(PACKAGE["app/text.py"]),
            ["print('x' * 300_000)\n"],
        ),
    )
    out = events[1]["out"]
    assert len(out) < 300_000 and out.endswith(" more characters]\n")
    assert out.startswith("x" * 1000)


def test_site_packages_pth_import_hooks_run(tmp_path: Path) -> None:
    """An editable install's finder is installed by a .pth `import` line, which -S skips."""
    site = tmp_path / "env/lib/site-packages"
    write(
        tmp_path,
        {
            **PACKAGE,
            "env/lib/site-packages/hooked_finder.py": """
                import sys, types
                class F:
                    @staticmethod
                    def find_spec(name, path=None, target=None):
                        if name == "edit_dep":
                            import importlib.machinery as m, importlib.util as u
                            return u.spec_from_loader(name, Loader())
                class Loader:
                    def create_module(self, spec): return None
                    def exec_module(self, mod): mod.VALUE = "from the hook"
                def install(): sys.meta_path.append(F)
                """,
            "env/lib/site-packages/__editable__.pth": "import hooked_finder; hooked_finder.install()\n",
        },
    )
    job = job_for(
        tmp_path, sys.executable, "app.text", "import edit_dep\nshout = 1\n", ["edit_dep.VALUE\n"]
    )
    job["sys_path"].append(str(site))
    events = run_job(sys.executable, job)
    assert events[0] == {"load": "ok"}, events
    assert events[1]["out"] == "'from the hook'\n"
    assert not (site / "__pycache__").exists()
