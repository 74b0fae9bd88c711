#!/usr/bin/env bash
# Build the phi-lsp VS Code extension and pack it as a .vsix, offline.
#
#   bash editor-clients/vscode/package.sh [OUT.vsix]
#
# OUT.vsix is relative to the directory you run it from (the README runs it from the
# repository root: `... package.sh phi-lsp.vsix` writes ./phi-lsp.vsix there); default:
# editor-clients/vscode/phi-lsp-<version>.vsix.
#
# Needs Node 20 + npm (dependencies come from the npm registry or its cache) and
# @vscode/vsce 3.9.2: $VSCE, else the one scripts/setup-editors.sh installed, else npx.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# Resolve OUT against the caller's directory before leaving it.
OUT=${1:-}
case "$OUT" in "" | /*) ;; *) OUT="$PWD/$OUT" ;; esac
cd "$HERE"
VERSION=$(node -p 'require("./package.json").version')
OUT=${OUT:-$HERE/phi-lsp-$VERSION.vsix}
export npm_config_audit=false npm_config_fund=false npm_config_update_notifier=false

# Dependencies exactly as locked; reinstalled only when the lock file changed.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  if [ -f package-lock.json ]; then npm ci --loglevel=error >&2; else npm install --loglevel=error >&2; fi
fi
rm -rf out
npx --no-install tsc -p . >&2

VSCE=${VSCE:-${PHI_LSP_EDITORS_DIR:-$HOME/.cache/phi-lsp-editors}/node_modules/.bin/vsce}
if [ -x "$VSCE" ]; then vsce=("$VSCE"); else vsce=(npx --yes @vscode/vsce@3.9.2); fi
# Write next to the target, then rename: a half-written .vsix never replaces a good one.
tmp="$OUT.tmp.$$.vsix"
trap 'rm -f "$tmp"' EXIT
"${vsce[@]}" package --allow-missing-repository --skip-license -o "$tmp" >&2
mv -f "$tmp" "$OUT"
echo "$OUT"
