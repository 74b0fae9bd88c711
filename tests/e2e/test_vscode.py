"""A real VS Code workbench with the packaged phi-lsp extension and the real server.

code-server (VS Code OSS 1.100.3) runs on a loopback port, headless Chromium
drives it (playwright-core), the extension is built and packed as a .vsix from
this checkout and installed with `--install-extension`; the extension finds
`phi-lsp` beside the selected Python interpreter and starts it with the
deterministic `replay:` model. The driver (vscode/drive.mjs) types inside a
function, waits for the ghost text, takes a screenshot, accepts with Tab, saves,
runs "phi-lsp: Verify Current Function" and "Toggle Completions" from the
command palette, and times
keystroke -> ghost text.

Install the kit: `bash scripts/setup-editors.sh` (PHI_LSP_EDITORS_DIR, default
~/.cache/phi-lsp-editors).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from editor_scenario import (
    EDITORS_DIR,
    EXPECT,
    LATENCY_P50_LIMIT_MS,
    LATENCY_TRIES,
    PKG_EXPECT,
    PKG_REPLAY,
    REPLAY,
    SETUP_HINT,
    SOURCE,
    clean_clone,
    make_package,
    readme_commands,
    readme_section,
    record_latency,
)

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")


def _missing() -> str:
    if shutil.which("node") is None:
        return f"node (20) is not on PATH: {SETUP_HINT}"
    if not (EDITORS_DIR / "node_modules/code-server/out/node/entry.js").is_file():
        return f"no VS Code kit (code-server) in {EDITORS_DIR}: {SETUP_HINT}"
    if not (EDITORS_DIR / "node_modules/.bin/vsce").exists():
        return f"no @vscode/vsce in {EDITORS_DIR}: {SETUP_HINT}"
    if not Path(CHROMIUM).is_file():
        return f"no Chromium at {CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)"
    return ""


pytestmark = [pytest.mark.editor, pytest.mark.skipif(bool(_missing()), reason=_missing() or "-")]


@pytest.fixture(scope="module")
def vsix(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The extension of this checkout, packed the way it ships."""
    out = tmp_path_factory.mktemp("vsix") / "phi-lsp.vsix"
    env = {**os.environ, "VSCE": str(EDITORS_DIR / "node_modules/.bin/vsce")}
    proc = subprocess.run(
        ["bash", str(ROOT / "editor-clients/vscode/package.sh"), str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 0, f"package.sh failed:\n{proc.stdout}\n{proc.stderr}"
    assert out.is_file()
    return out


def _drive(
    tmp_path: Path,
    vsix: Path | None,
    settings: dict[str, Any],
    *args: str,
    file: Path | None = None,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    src = file or tmp_path / "add.py"
    if file is None:
        src.write_text(SOURCE)
    result = tmp_path / "result.json"
    cmd = [
        "node",
        str(HERE / "vscode/drive.mjs"),
        "--install",
        str(EDITORS_DIR),
        *(["--extension", str(vsix)] if vsix else []),
        "--file",
        str(src),
        "--expect",
        EXPECT,
        "--settings",
        json.dumps(settings),
        "--result",
        str(result),
        "--tmp",
        str(tmp_path),
        "--chromium",
        CHROMIUM,
        *args,
    ]
    from model_runtime.tiny import cache_root

    # drive.mjs moves XDG_CACHE_HOME: the built tiny model stays where it is.
    base = {**os.environ, "PHI_LSP_CACHE_DIR": str(cache_root())}
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=600, env={**base, **(env or {})}
    )
    print(proc.stdout)
    assert proc.returncode == 0, f"drive.mjs failed:\n{proc.stdout}\n{proc.stderr}"
    return json.loads(result.read_text())


def _server_settings(tmp_path: Path) -> dict[str, Any]:
    replay = tmp_path / "replay.txt"
    replay.write_text(REPLAY)
    settings: dict[str, Any] = {"phiLsp.model": f"replay:{replay}"}
    # The default: no phiLsp.serverPath; the extension finds phi-lsp beside the
    # selected Python interpreter (the venv this checkout is installed in).
    if (Path(sys.executable).parent / "phi-lsp").is_file():
        settings["python.defaultInterpreterPath"] = sys.executable
    else:
        settings["phiLsp.serverPath"] = sys.executable
        settings["phiLsp.serverArgs"] = ["-m", "phi_lsp", "--stdio"]
    return settings


def test_ghost_text_in_vscode_is_accepted_with_tab(
    tmp_path: Path, vsix: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    screenshot = tmp_path / "vscode-ghost-text.png"
    res = _drive(
        tmp_path,
        vsix,
        _server_settings(tmp_path),
        "--status-expect",
        "Phi ready",
        "--verify-expect",
        "✓ 1/1",
        "--toggle-check",
        "--accept-word",
        "--restart-check",
        "--latency-runs",
        str(LATENCY_TRIES),
        "--screenshot",
        str(screenshot),
    )
    with capsys.disabled():  # in the test log even when the test passes
        print(f"\n[vscode] screenshot of the ghost text: {screenshot}")
    assert res["pass"] is True
    assert screenshot.stat().st_size > 10_000, "screenshot is empty"
    # Accepted with Tab and saved: the body is in the file, exactly once.
    assert res["savedText"].rstrip("\n") == SOURCE + "    return a + b", res["savedText"]
    assert res["statusBar"] == "Phi ready"
    assert res["statusBarAfterVerify"] == "Phi ready ✓ 1/1"
    # "Toggle Completions" reached the server and came back as its state.
    assert res["statusBarToggledOff"].startswith("Phi disabled"), res
    assert res["statusBarToggledOn"].startswith("Phi ready"), res
    # VS Code's Accept Word (Ctrl+Right) on our item: one word, the rest still shown.
    assert res["afterAcceptWord"].rstrip("\n").endswith("    return"), res["afterAcceptWord"]
    assert "a + b" in res["ghostAfterAcceptWord"], res
    # A restart is no error: the output has no [error] line (nor warnings as errors).
    assert res["statusBarAfterRestart"] == "Phi ready", res
    assert res["outputErrors"] == [], res["outputErrors"]

    delays = res["latencyMs"]
    assert len(delays) == LATENCY_TRIES
    figure = {
        "editor": "vscode 1.100.3 (code-server, headless chromium)",
        "path": "vscode-languageclient 10 inline completion",
        "model": "replay",
        "tries": len(delays),
        "p50_ms": res["latencyP50Ms"],
        "min_ms": min(delays),
        "max_ms": max(delays),
    }
    with capsys.disabled():
        print(f"[vscode] keystroke -> ghost text: {json.dumps(figure)}")
    record_latency(figure)
    assert res["latencyP50Ms"] < LATENCY_P50_LIMIT_MS, figure


def test_missing_server_shows_error_in_status_bar(tmp_path: Path, vsix: Path) -> None:
    """A wrong phiLsp.serverPath: the status bar says error, the editor keeps working."""
    missing = tmp_path / "no-such-phi-lsp"
    res = _drive(
        tmp_path,
        vsix,
        {"phiLsp.serverPath": str(missing)},
        "--status-only",
        "--status-expect",
        "Phi error",
    )
    assert res["statusBar"].startswith("Phi error"), res
    assert f"phiLsp.serverPath {missing} is not an executable file" in res["notifications"], res
    assert res["savedText"].endswith("    pass"), res["savedText"]


def test_suggestion_in_a_package_module_arrives_verified(tmp_path: Path, vsix: Path) -> None:
    """verify: prefer on a module with `from .helpers import double`: ✓ in the status bar,
    and the tooltip names the interpreter the examples ran with."""
    project = tmp_path / "project"
    calc = make_package(project)
    settings = _server_settings(tmp_path)
    (tmp_path / "replay.txt").write_text(PKG_REPLAY)
    settings["phiLsp.verify"] = "prefer"
    res = _drive(
        tmp_path,
        vsix,
        settings,
        "--workspace-from",
        str(project),
        "--expect",
        PKG_EXPECT,
        "--status-expect",
        "Phi ready ✓ 1/1",
        "--tooltip",
        file=calc,
    )
    assert res["statusBar"] == "Phi ready ✓ 1/1", res
    assert "examples run with:" in res["tooltip"], res["tooltip"]
    assert res["savedText"].rstrip("\n").endswith("    " + PKG_EXPECT), res["savedText"]


def test_missing_model_one_short_message(tmp_path: Path, vsix: Path) -> None:
    """The default model is not in the cache and the hub is out of reach: one short
    message in the editor's words, status "Phi error" with no stale badge."""
    settings = _server_settings(tmp_path)
    del settings["phiLsp.model"]  # the default: microsoft/phi-1
    env = {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "empty-hf-home")}
    res = _drive(tmp_path, vsix, settings, "--status-only", "--status-expect", "Phi error", env=env)
    assert res["statusBar"] == "Phi error", res
    toasts = [t for t in res["notifications"].splitlines() if t.strip()]
    assert len(toasts) == 1, toasts
    assert len(toasts[0]) < 200, toasts[0]
    assert "--model" not in toasts[0] and "pip install phi-lsp" not in toasts[0], toasts[0]


def test_readme_vscode_steps_in_a_clean_clone_end_with_ghost_text(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The README's set-up and VS Code install step, as written, from a clone's root;
    `code` is code-server's CLI. Then the installed extension shows ghost text."""
    clone = clean_clone(tmp_path_factory.mktemp("readme"))
    install = readme_commands(readme_section("VS Code"), "**Install.**")
    bindir, user, exts = tmp_path / "bin", tmp_path / "code-user", tmp_path / "code-exts"
    bindir.mkdir()
    entry = EDITORS_DIR / "node_modules/code-server/out/node/entry.js"
    (bindir / "code").write_text(
        f'#!/bin/sh\nexec node {entry} --user-data-dir {user} --extensions-dir {exts} "$@"\n'
    )
    (bindir / "code").chmod(0o755)
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(
        ["bash", "-c", f"set -e\n{install}"],
        cwd=clone,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert proc.returncode == 0, f"{install}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    assert any(p.name.startswith("phi-lsp.phi-lsp-") for p in exts.iterdir()), list(exts.iterdir())

    replay = tmp_path / "replay.txt"
    replay.write_text(REPLAY)
    # What the README tells a user to choose: the clone's .venv as the interpreter.
    settings = {
        "python.defaultInterpreterPath": str(clone / ".venv/bin/python"),
        "phiLsp.model": f"replay:{replay}",
    }
    res = _drive(tmp_path, None, settings, "--extensions-dir", str(exts))
    assert res["pass"] is True
    assert res["savedText"].rstrip("\n") == SOURCE + "    return a + b", res["savedText"]


def test_missing_model_then_use_tiny_gives_ghost_text_without_restart(
    tmp_path: Path, vsix: Path
) -> None:
    """Offline, default model: the toast's "Use the tiny demo model" leads to ghost
    text in the same window, and becomes the user's phiLsp.model."""
    settings = _server_settings(tmp_path)
    del settings["phiLsp.model"]
    env = {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "empty-hf-home")}
    user = tmp_path / "user-data"
    res = _drive(
        tmp_path,
        vsix,
        settings,
        "--first-action",
        "Use the tiny demo model",
        "--expect",
        "*",
        "--timeout",
        "240",
        "--user-data",
        str(user),
        env=env,
    )
    assert res["pass"] is True, res
    assert len(res["firstToast"]) < 200, res["firstToast"]
    assert res["ghostText"].strip(), res
    saved = json.loads((user / "User/settings.json").read_text())
    assert saved["phiLsp.model"] == "tiny", saved


def test_cpu_warning_once_per_model_not_at_every_start(tmp_path: Path, vsix: Path) -> None:
    """A local model on the CPU: warned at the first start, not at the second."""
    settings = _server_settings(tmp_path)
    settings["phiLsp.model"] = "random:phi-1?layers=1"
    user = tmp_path / "user-data"
    seen = []
    for run in ("first", "second"):
        (tmp_path / run).mkdir()
        res = _drive(
            tmp_path / run,
            vsix,
            settings,
            "--status-only",
            "--status-expect",
            "Phi ready",
            "--user-data",
            str(user),
        )
        seen.append([t for t in res["notifications"].splitlines() if "CPU" in t])
    assert len(seen[0]) == 1, seen
    assert seen[1] == [], seen


def test_examples_run_with_the_python_extensions_interpreter_and_follow_changes(
    tmp_path: Path, vsix: Path
) -> None:
    """The Python extension's selected interpreter (a stand-in implementing its API:
    the Marketplace is out of reach) is the examples' interpreter: a module importing a
    package installed only in that environment (outside the project, so nothing else
    would find it) is verified ✓; the tooltip names it, and follows a new selection."""
    env_dir = tmp_path / "envs/projenv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True)
    env_python = env_dir / "bin/python"
    site = subprocess.run(
        [str(env_python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(site, "depmod.py").write_text("def scale():\n    return 4\n")
    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text("[project]\nname = 'demo'\n")
    mod = project / "quad.py"
    mod.write_text(
        'from depmod import scale\n\n\ndef quad(x):\n    """Four times x.\n\n'
        '    >>> quad(3)\n    12\n    """\n'
    )
    fake = tmp_path / "fake-python"
    shutil.copytree(HERE / "vscode/fake-python", fake)
    (fake / "envs.json").write_text(json.dumps({"first": str(env_python), "other": sys.executable}))
    settings = _server_settings(tmp_path)
    (tmp_path / "replay.txt").write_text("return scale() * x\n")
    settings["phiLsp.verify"] = "prefer"
    res = _drive(
        tmp_path,
        vsix,
        settings,
        "--workspace-from",
        str(project),
        "--also-extension",
        str(fake),
        "--expect",
        "return scale() * x",
        "--status-expect",
        "Phi ready ✓ 1/1",
        "--tooltip",
        "--then-command",
        "Fake Python: Select the Other Interpreter",
        file=mod,
    )
    assert res["statusBar"] == "Phi ready ✓ 1/1", res
    assert f"examples run with: {env_python}" in res["tooltip"], res["tooltip"]
    assert f"examples run with: {sys.executable}" in res["tooltipAfterCommand"], res
