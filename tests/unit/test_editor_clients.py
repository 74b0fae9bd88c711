"""The VS Code extension's settings mirror the server's (phi_lsp/settings.py).

The extension sends every contributed `phiLsp.*` key except its own client-only
ones to the server; a key the server does not know would be warned about, and a
default that differs would make VS Code users get other behaviour than the CLI.
"""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path
from typing import Any

from phi_lsp import settings as settings_mod
from phi_lsp.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
CLIENT_ONLY = {"serverPath", "serverArgs"}


def _contributed() -> dict[str, dict[str, Any]]:
    pkg = json.loads((ROOT / "editor-clients/vscode/package.json").read_text())
    props = pkg["contributes"]["configuration"]["properties"]
    return {k.removeprefix("phiLsp."): v for k, v in props.items()}


def test_extension_contributes_exactly_the_server_settings() -> None:
    server_keys = set(Settings().to_wire())
    contributed = set(_contributed()) - CLIENT_ONLY
    assert contributed == server_keys, (
        f"missing in package.json: {sorted(server_keys - contributed)}; "
        f"unknown to the server: {sorted(contributed - server_keys)}"
    )


def test_extension_defaults_and_choices_match_the_server() -> None:
    wire = Settings().to_wire()
    contributed = _contributed()
    for f in fields(Settings):
        key = settings_mod._camel(f.name)
        prop = contributed[key]
        assert prop["default"] == wire[key], key
        if f.name in settings_mod._CHOICES:
            assert prop["enum"] == list(settings_mod._CHOICES[f.name]), key
        if f.name in settings_mod._RANGES:
            lo, hi = settings_mod._RANGES[f.name]
            assert (prop["minimum"], prop["maximum"]) == (lo, hi), key


def test_extension_package_script_and_lock_are_committed_together() -> None:
    vscode = ROOT / "editor-clients/vscode"
    lock = json.loads((vscode / "package-lock.json").read_text())
    pkg = json.loads((vscode / "package.json").read_text())
    # npm ci (package.sh) refuses a lock that does not match package.json.
    assert lock["packages"][""]["dependencies"] == pkg["dependencies"]
    assert lock["packages"][""]["devDependencies"] == pkg["devDependencies"]


def test_server_path_is_readable_from_user_settings_in_remote_windows() -> None:
    """machine(-overridable) settings ignore the User value in a remote window; the
    executable settings are kept out of untrusted workspaces instead."""
    pkg = json.loads((ROOT / "editor-clients/vscode/package.json").read_text())
    props = pkg["contributes"]["configuration"]["properties"]
    for key in ("phiLsp.serverPath", "phiLsp.serverArgs"):
        assert props[key].get("scope", "window") not in ("machine", "machine-overridable"), key
    restricted = pkg["capabilities"]["untrustedWorkspaces"]["restrictedConfigurations"]
    assert {"phiLsp.serverPath", "phiLsp.serverArgs", "phiLsp.pythonPath"} <= set(restricted)


def _nvim() -> str | None:
    import shutil
    import sys

    exe = Path(sys.executable).parent / "nvim"
    return str(exe) if exe.is_file() else shutil.which("nvim")


def _lua(code: str) -> Any:
    """Run `code` (which returns a value) in a headless Neovim with the plugin."""
    import subprocess

    import pytest

    nvim = _nvim()
    if nvim is None:
        pytest.skip("no nvim: bash scripts/setup-editors.sh")
    script = (
        f"vim.opt.rtp:prepend({json.dumps(str(ROOT / 'editor-clients/nvim'))})\n"
        f"local function run() {code} end\n"
        "io.stdout:write(vim.json.encode({ v = run() }))\n"
    )
    proc = subprocess.run(
        [nvim, "--headless", "--clean", "-l", "-"],
        input=script,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["v"]


def test_nvim_accept_word_and_line_take_the_right_part() -> None:
    cases = {
        ("total = a + b\n    return total", "word"): "total",
        (" = a + b\n    return total", "word"): " =",
        ("(a, b)", "word"): "(",
        ("\n    return total", "word"): "\n    return",
        ("total = a + b\n    return total", "line"): "total = a + b",
        ("\n    return total\n", "line"): "\n    return total",
        ("x", "line"): "x",
    }
    got = _lua(
        "local g = require('phi_lsp.ghost') local out = {} "
        f"for _, c in ipairs(vim.json.decode({json.dumps(json.dumps([list(k) for k in cases]))})) do "
        "out[#out + 1] = g.partial(c[1], c[2]) end return out"
    )
    assert dict(zip(cases, got, strict=True)) == cases


def test_nvim_status_line_states_and_no_stale_badge() -> None:
    got = _lua(
        "local s = require('phi_lsp.status') local out = { s.statusline() } "
        "s.set({ state = 'starting' }) out[#out + 1] = s.statusline() "
        "s.set({ state = 'downloading', percent = 42.7 }) out[#out + 1] = s.statusline() "
        "s.set({ state = 'ready' }) s.verification = { status = 'passed', passed = 1, failed = 0 } "
        "out[#out + 1] = s.statusline() "
        "s.set({ state = 'error', message = 'x' }) out[#out + 1] = s.statusline() "
        "out[#out + 1] = s.is_result({ status = 'error', passed = 0, failed = 0, "
        "reason = 'no function at line 11' }) "
        "out[#out + 1] = s.is_result({ status = 'error', passed = 0, failed = 0, "
        "reason = 'ImportError: x' }) "
        "return out"
    )
    assert got == [
        "",
        "Phi starting",
        "Phi downloading 42 %",
        "Phi ready ✓ 1/1",
        "Phi error",
        False,
        True,
    ]


def test_nvim_messages_fit_one_line_and_are_said_once() -> None:
    got = _lua(
        "local n = require('phi_lsp.notify') local shown = {} "
        "vim.notify = function(m) shown[#shown + 1] = m end "
        "vim.o.columns = 80 "
        "n.on_show_message(nil, { type = 1, message = string.rep('long words ', 30) }) "
        "n.on_show_message(nil, { type = 1, message = string.rep('long words ', 30) }) "
        "n.on_show_message(nil, { type = 2, message = 'no GPU: running it on the CPU' }) "
        "n.on_show_message(nil, { type = 2, message = 'no GPU: running it on the CPU.' }) "
        "n.on_show_message(nil, { type = 4, message = 'log only' }) "
        "return shown"
    )
    # vim.notify replaced by a plugin: the whole text; once per event; the CPU
    # warning once per model; Log-level messages not shown.
    assert len(got) == 2, got
    assert got[0].startswith("phi-lsp: long words") and got[1].endswith("CPU"), got


def test_nvim_builtin_notify_gets_a_line_that_fits() -> None:
    got = _lua(
        "local n = require('phi_lsp.notify') vim.o.columns = 80 "
        "return n.fit(string.rep('x', 300), ' (:PhiLspActions)')"
    )
    assert len(got) < 80 and got.endswith("… (:PhiLspActions)"), got
