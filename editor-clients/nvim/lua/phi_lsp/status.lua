-- The server's model state (phiLsp/status) and the last verification result
-- (phiLsp/verification): kept here, shown in the status line and as virtual text.
-- Pop-up messages are the server's window/showMessage (phi_lsp.notify), never
-- repeated from here.
local M = {}

M.ns = vim.api.nvim_create_namespace('phi_lsp.verification')

---@class phi_lsp.State
---@field state string  idle|starting|downloading|loading|ready|error|disabled|stopped
---@field model? string
---@field device? string
---@field message? string
---@field percent? number
---@field python? string
---@field pythonReason? string

---@type phi_lsp.State
M.state = { state = 'idle' } -- no server started yet: the status line is empty
---@type {uri?: string, status: string, passed?: integer, failed?: integer}|nil
M.verification = nil

-- A download or build with a percentage is shown on the message line, updated in
-- place (not kept in :messages, one line: no prompt); the line is cleared when the
-- model is ready, unless a message was shown after it.
local progress = { id = nil, shown_at = nil, last = nil } ---@type {id?: integer, shown_at?: integer, last?: string}

local function show_progress()
  local s = M.state
  if not (s.percent and (s.state == 'downloading' or s.state == 'loading')) then
    return
  end
  local notify = require('phi_lsp.notify')
  local msg = notify.fit(('phi-lsp: %s %s %d %%'):format(s.state, s.model or '', math.floor(s.percent)))
  if msg == progress.last then
    return
  end
  local opts = {}
  if vim.fn.has('nvim-0.12') == 1 then
    opts = { kind = 'progress', title = 'phi-lsp', status = 'running', percent = math.floor(s.percent), id = progress.id }
  end
  local ok, id = pcall(vim.api.nvim_echo, { { msg } }, false, opts)
  if not ok then
    ok, id = pcall(vim.api.nvim_echo, { { msg } }, false, {})
  end
  if ok then
    progress.id = type(id) == 'number' and id or nil
    progress.shown_at, progress.last = vim.uv.now(), msg
  end
end

local function clear_progress()
  if not progress.shown_at then
    return
  end
  local said = require('phi_lsp.notify').last_at
  if not (said and said >= progress.shown_at) then
    pcall(vim.api.nvim_echo, { { '' } }, false, {})
  end
  progress.id, progress.shown_at, progress.last = nil, nil, nil
end

local function changed()
  vim.api.nvim_exec_autocmds('User', { pattern = 'PhiLspStatus', modeline = false })
  pcall(vim.cmd.redrawstatus, { bang = true })
  if M.state.state == 'ready' then
    clear_progress()
  else
    show_progress()
  end
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

--- A verifyFunction reply that is no verification (the cursor is outside any
--- function): not a ✗.
function M.is_result(v)
  if type(v) ~= 'table' then
    return false
  end
  local none = v.status == 'no-function'
    or (v.status == 'error' and (v.passed or 0) + (v.failed or 0) == 0 and #(v.results or {}) == 0
      and tostring(v.reason or ''):lower():find('^no function') ~= nil)
  return not none
end

--- For 'statusline': `%{v:lua.require'phi_lsp'.statusline()}`.
--- "Phi starting", "Phi downloading 42 %", "Phi loading", "Phi ready ✓ 1/1", "Phi error".
---@return string
function M.statusline()
  local st = M.state.state or '?'
  if st == 'idle' then
    return ''
  end
  local s = 'Phi ' .. st
  if M.state.percent and (st == 'downloading' or st == 'loading' or st == 'starting') then
    s = ('%s %d %%'):format(s, math.floor(M.state.percent))
  end
  if M.verification and st == 'ready' then
    s = s .. ' ' .. M.badge(M.verification)
  end
  return s
end

--- Set the state; a badge from before a state change would be stale.
---@param s phi_lsp.State
function M.set(s)
  if s.state ~= 'ready' or M.state.state ~= 'ready' then
    M.verification = nil
  end
  -- Fields the server sends once (python) survive a state without them.
  s.python = s.python or (s.state ~= 'stopped' and M.state.python or nil)
  s.pythonReason = s.pythonReason or (s.python and M.state.pythonReason or nil)
  M.state = s
  changed()
end

function M.on_status(_, params)
  if type(params) ~= 'table' or type(params.state) ~= 'string' then
    return vim.NIL
  end
  local s = vim.deepcopy(params)
  if s.percent == vim.NIL then
    s.percent = nil
  end
  M.set(s)
  return vim.NIL
end

--- $/progress of our server: the percentage, when phiLsp/status has none.
function M.on_progress(value)
  if type(value) ~= 'table' then
    return
  end
  local st = M.state.state
  if value.kind == 'end' then
    if M.state.percent and st ~= 'ready' then
      M.state.percent = nil
      changed()
    end
  elseif type(value.percentage) == 'number' and (st == 'downloading' or st == 'loading' or st == 'starting') then
    if M.state.percent ~= value.percentage then
      M.state.percent = value.percentage
      changed()
    end
  end
end

--- Show `v` as virtual text at the end of `line` (0-based) of `bufnr`.
function M.show_verification(bufnr, line, v)
  if not M.is_result(v) then
    return
  end
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
    return vim.NIL
  end
  local bufnr = params.uri and vim.uri_to_bufnr(params.uri) or vim.api.nvim_get_current_buf()
  local line = params.range and params.range.start and params.range.start.line or 0
  M.show_verification(bufnr, line, params)
  return vim.NIL
end

return M
