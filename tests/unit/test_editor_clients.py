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
