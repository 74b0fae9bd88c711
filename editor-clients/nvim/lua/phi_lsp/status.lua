-- The server's model state (phiLsp/status) and the last verification result
-- (phiLsp/verification): kept here, shown in the status line and as virtual text.
local M = {}

M.ns = vim.api.nvim_create_namespace('phi_lsp.verification')

---@type {state: string, model?: string, device?: string, message?: string}
M.state = { state = 'stopped' }
---@type {uri?: string, status: string, passed?: integer, failed?: integer}|nil
M.verification = nil

local function changed()
  vim.api.nvim_exec_autocmds('User', { pattern = 'PhiLspStatus', modeline = false })
  vim.cmd.redrawstatus({ bang = true })
end

--- "✓ 2/2", "✗ 1/3", "–": the short verification badge.
---@param v table
---@return string
function M.badge(v)
  local passed, failed = v.passed or 0, v.failed or 0
  if v.status == 'passed' then
    return ('✓ %d/%d'):format(passed, passed + failed)
  elseif v.status == 'failed' then
    return ('✗ %d/%d'):format(passed, passed + failed)
  elseif v.status == 'timeout' or v.status == 'error' then
    return '✗ ' .. v.status
  end
  return '–'
end

--- For 'statusline': `%{v:lua.require'phi_lsp'.statusline()}`.
---@return string
function M.statusline()
  local s = 'Phi ' .. (M.state.state or '?')
  if M.verification then
    s = s .. ' ' .. M.badge(M.verification)
  end
  return s
end

function M.on_status(_, params)
  M.state = params or { state = 'unknown' }
  if M.state.state == 'error' then
    vim.notify('phi-lsp: ' .. (M.state.message or 'model error'), vim.log.levels.ERROR)
  end
  changed()
end

--- Show `v` as virtual text at the end of `line` (0-based) of `bufnr`.
function M.show_verification(bufnr, line, v)
  M.verification = v
  if require('phi_lsp.config').options.verification_virtual_text and vim.api.nvim_buf_is_valid(bufnr) then
    vim.api.nvim_buf_clear_namespace(bufnr, M.ns, 0, -1)
    local last = vim.api.nvim_buf_line_count(bufnr) - 1
    local hl = v.status == 'passed' and 'DiagnosticOk' or v.status == 'no-examples' and 'Comment' or 'DiagnosticWarn'
    vim.api.nvim_buf_set_extmark(bufnr, M.ns, math.min(math.max(line, 0), last), 0, {
      virt_text = { { 'phi ' .. M.badge(v), hl } },
      virt_text_pos = 'eol',
    })
  end
  changed()
end

function M.on_verification(_, params)
  if type(params) ~= 'table' then
    return
  end
  local bufnr = params.uri and vim.uri_to_bufnr(params.uri) or vim.api.nvim_get_current_buf()
  local line = params.range and params.range.start and params.range.start.line or 0
  M.show_verification(bufnr, line, params)
end

return M
