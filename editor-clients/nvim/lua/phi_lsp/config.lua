-- Defaults merged with the user's options; the one place for the plugin's knobs.
local M = {}

M.defaults = {
  -- argv that starts the server over stdio. nil: `phi-lsp --stdio` from PATH
  -- (or from the active virtualenv, $VIRTUAL_ENV/bin/phi-lsp).
  cmd = nil,
  filetypes = { 'python' },
  root_markers = { 'pyproject.toml', 'setup.py', 'setup.cfg', '.git' },
  -- The Python whose packages the docstring examples run with (verification).
  -- nil: the server detects it ($VIRTUAL_ENV, then .venv/ or venv/ at the project
  -- root, then phi-lsp's own); a path: sent as the server setting `pythonPath`.
  python = nil,
  -- The server's settings (docs/contracts.md §4; camelCase as on the wire):
  -- model, device, dtype, maxNewTokens, temperature, topP, candidates, verify,
  -- verifyTimeoutMs, debounceMs, completionFallback, logLevel, enable, ...
  -- Sent as initializationOptions and as workspace settings section `phiLsp`.
  settings = {},
  -- Insert-mode keys; false turns a key off. Accept falls back to the key's own
  -- meaning when no suggestion is shown.
  keymaps = {
    accept = '<Tab>',
    accept_word = '<M-Right>',
    accept_line = '<M-C-Right>',
    next = '<M-]>',
    prev = '<M-[>',
    dismiss = '<C-]>',
  },
  -- Show the last verification result as virtual text at the end of the line.
  verification_virtual_text = true,
  -- Neovim < 0.12 (or force_fallback): the plugin's own ghost text, requested
  -- this long after the last keystroke.
  debounce_ms = 150,
  force_fallback = false,
}

M.options = vim.deepcopy(M.defaults)

--- Merge `opts` over the defaults; unknown keys are reported, not fatal.
---@param opts table|nil
---@return table
function M.set(opts)
  opts = opts or {}
  vim.validate({ opts = { opts, 'table' } })
  for key in pairs(opts) do
    if M.defaults[key] == nil and key ~= 'cmd' and key ~= 'python' then
      vim.notify(('phi_lsp.setup: unknown option %q ignored'):format(key), vim.log.levels.WARN)
    end
  end
  local merged = vim.tbl_deep_extend('force', vim.deepcopy(M.defaults), opts)
  -- Lists replace, never merge element by element.
  for _, key in ipairs({ 'cmd', 'filetypes', 'root_markers' }) do
    if opts[key] ~= nil then
      merged[key] = opts[key]
    end
  end
  if merged.cmd ~= nil and (type(merged.cmd) ~= 'table' or #merged.cmd == 0) then
    vim.notify('phi_lsp.setup: cmd must be a non-empty list of strings; using the default', vim.log.levels.WARN)
    merged.cmd = nil
  end
  merged.cmd = merged.cmd or M.default_cmd()
  if merged.python ~= nil and (type(merged.python) ~= 'string' or merged.python == '') then
    vim.notify('phi_lsp.setup: python must be a path to an interpreter; detecting it instead', vim.log.levels.WARN)
    merged.python = nil
  end
  if merged.python then
    merged.python = vim.fs.normalize(merged.python)
    merged.settings = vim.tbl_extend('force', merged.settings, { pythonPath = merged.python })
  end
  M.options = merged
  return merged
end

--- `phi-lsp --stdio` from the active virtualenv if it has one, else PATH.
---@return string[]
function M.default_cmd()
  local venv = vim.env.VIRTUAL_ENV
  if venv and vim.fn.executable(venv .. '/bin/phi-lsp') == 1 then
    return { venv .. '/bin/phi-lsp', '--stdio' }
  end
  return { 'phi-lsp', '--stdio' }
end

return M
