"""Agreement of `phi-lsp verify` with `pytest --doctest-modules` on a real repository.

    .venv/bin/python benchmarks/pytest_agreement.py REPO PACKAGE_DIR [--ignore DIR ...]

Makes ``REPO/.venv`` (no network: pytest and its requirements are copied from this
environment) unless it exists, runs pytest there with ``--doctest-modules`` on
PACKAGE_DIR (junit XML), then ``phi-lsp verify FILE --json`` on every file with no flags
(the project's ``.venv`` is found by itself), and prints one JSON object: the function
items both saw, how many agree (pytest passed <-> passed; failed <-> failed, error or
timeout; skipped <-> no examples), the disagreements, pytest's items that are not
functions (module and class docstrings), and functions only phi-lsp ran (informal
examples, which pytest never runs, or names the module removes at import).

Measured (issue 12): pytoolz/toolz 72/72, more-itertools 154/154, mahmoud/boltons 123/123.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

import test_verify_project as repo_tools  # noqa: E402  (venv building, clean environment)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("repo", type=Path)
    ap.add_argument("package")
    ap.add_argument("--ignore", action="append", default=[])
    args = ap.parse_args()
    root: Path = args.repo.resolve()
    python = root / ".venv/bin/python"
    if not python.exists():
        base = getattr(sys, "_base_executable", sys.executable)
        subprocess.run([base, "-m", "venv", "--without-pip", str(root / ".venv")], check=True)
        repo_tools._install_by_copy("pytest", repo_tools._site_packages(python), set())
    xml = root / ".phi-agreement-junit.xml"
    env = {**repo_tools._clean_env(), "PYTHONDONTWRITEBYTECODE": "1"}
    cmd = [str(python), "-m", "pytest", "--doctest-modules",
           "--continue-on-collection-errors", "-p", "no:cacheprovider", f"--junitxml={xml}",
           "-q", str(root / args.package), *(f"--ignore={root / i}" for i in args.ignore)]  # fmt: skip
    t0 = time.perf_counter()
    # cwd outside the repository: `python -m` puts the cwd on sys.path, pytest would not.
    subprocess.run(cmd, cwd=root.parent, capture_output=True, env=env, check=False)
    pytest_s = time.perf_counter() - t0
    items: dict[str, str] = {}
    for case in ET.parse(xml).getroot().iter("testcase"):
        kinds = {c.tag for c in case}
        error = case.find("error")
        if error is not None and "collection failure" in error.get("message", ""):
            items[case.get("name", "")] = "collection error"
            continue
        failed = kinds & {"failure", "error"}
        items[case.get("name", "")] = (
            "failed" if failed else "skipped" if "skipped" in kinds else "passed"
        )
    xml.unlink()
    verified: dict[str, dict] = {}
    files = [
        p
        for p in sorted((root / args.package).rglob("*.py"))
        if ".venv" not in p.parts
        and not any(str(p.relative_to(root)).startswith(i) for i in args.ignore)
    ]
    t0 = time.perf_counter()
    for f in files:
        proc = subprocess.run(
            [sys.executable, "-m", "phi_lsp", "verify", str(f), "--json"],
            capture_output=True, text=True, env=repo_tools._clean_env(), cwd="/", check=False,
        )  # fmt: skip
        if proc.returncode not in (0, 1):
            verified[str(f)] = {"status": "verify failed", "reason": proc.stderr.strip()[-300:]}
            continue
        rep = json.loads(proc.stdout)
        for fn in rep["functions"]:
            verified[f"{rep['module']}.{fn['name']}"] = {
                "status": fn["status"],
                "reason": fn["reason"][:200],
            }
    verify_s = time.perf_counter() - t0
    both = {k: v for k, v in items.items() if k in verified}
    disagree = []
    for name, outcome in both.items():
        got = verified[name]["status"]
        ok = (
            (outcome == "passed" and got == "passed")
            or (outcome == "failed" and got in ("failed", "error", "timeout"))
            or (outcome == "skipped" and got == "no-examples")
        )
        if not ok:
            disagree.append({"function": name, "pytest": outcome, "phi_lsp": verified[name]})
    print(
        json.dumps(
            {
                "repo": str(root),
                "functions_both_ran": len(both),
                "agree": len(both) - len(disagree),
                "agreement": round((len(both) - len(disagree)) / max(len(both), 1), 4),
                "disagreements": disagree,
                "pytest_items_not_functions": sorted(k for k in items if k not in verified),
                "only_phi_lsp": {
                    k: v
                    for k, v in verified.items()
                    if k not in items and v["status"] != "no-examples"
                },
                "pytest_s": round(pytest_s, 1),
                "verify_s": round(verify_s, 1),
                "files": len(files),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
