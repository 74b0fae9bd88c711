-- phi-lsp for Neovim: `require("phi_lsp").setup({...})`.
--
-- Starts `phi-lsp --stdio` for Python buffers (vim.lsp.config/enable on 0.11+,
-- vim.lsp.start on 0.10). Ghost text: Neovim 0.12's vim.lsp.inline_completion,
-- or this plugin's own (phi_lsp.ghost) on 0.10/0.11.
local config = require('phi_lsp.config')
local status = require('phi_lsp.status')
local notify = require('phi_lsp.notify')

local M = {}

M.name = 'phi_lsp'

--- True when this Neovim has built-in inline completion (0.12+).
function M.native()
  return vim.lsp.inline_completion ~= nil and not config.options.force_fallback
end

local compat = require('phi_lsp.compat')
local get_clients = compat.get_clients

--- The phi_lsp client attached to `bufnr` (default: current buffer).
function M.client(bufnr)
  return get_clients({ bufnr = bufnr or vim.api.nvim_get_current_buf(), name = M.name })[1]
end

local function feed(key)
  return vim.api.nvim_replace_termcodes(key, true, false, true)
end

--- Neovim 0.12: insert the next word / line of the shown suggestion. The
--- built-in accepts whole items only: take the item, insert part of it; the
--- edit asks the server again, which answers the rest from the same suggestion.
local function native_partial(bufnr, kind)
  local ghost = require('phi_lsp.ghost')
  return vim.lsp.inline_completion.get({
    bufnr = bufnr,
    on_accept = function(item)
      local text = type(item.insert_text) == 'string' and item.insert_text or (item.insert_text or {}).value
      if type(text) ~= 'string' then
        return
      end
      local cursor = vim.api.nvim_win_get_cursor(0)
      if item.range then
        local srow, scol = item.range.start.row, item.range.start.col
        local ok, parts = pcall(vim.api.nvim_buf_get_text, bufnr, srow, scol, cursor[1] - 1, cursor[2], {})
        local typed = ok and table.concat(parts, '\n') or ''
        if vim.startswith(text, typed) then
          text = text:sub(#typed + 1)
        end
      end
      ghost.insert_at_cursor(bufnr, ghost.partial(text, kind))
    end,
  })
end

-- Insert-mode keys for one buffer. Each falls back to the key itself when
-- there is no suggestion, so <Tab> still indents.
local function set_keymaps(bufnr)
  local keys = config.options.keymaps or {}
  local ghost = require('phi_lsp.ghost')
  local actions = {
    accept = function()
      if M.native() then
        return vim.lsp.inline_completion.get({ bufnr = bufnr })
      end
      return ghost.accept(bufnr)
    end,
    accept_word = function()
      if M.native() then
        return native_partial(bufnr, 'word')
      end
      return ghost.accept_partial('word', bufnr)
    end,
    accept_line = function()
      if M.native() then
        return native_partial(bufnr, 'line')
      end
      return ghost.accept_partial('line', bufnr)
    end,
    next = function()
      if M.native() then
        vim.lsp.inline_completion.select({ bufnr = bufnr, count = 1 })
        return true
      end
      return ghost.select(1, bufnr)
    end,
    prev = function()
      if M.native() then
        vim.lsp.inline_completion.select({ bufnr = bufnr, count = -1 })
        return true
      end
      return ghost.select(-1, bufnr)
    end,
    dismiss = function()
      if M.native() then
        -- 0.12 has no public dismiss: turning the capability off and on clears it.
        vim.lsp.inline_completion.enable(false, { bufnr = bufnr })
        vim.lsp.inline_completion.enable(true, { bufnr = bufnr })
        return true
      end
      return ghost.dismiss(bufnr)
    end,
  }
  for action, fn in pairs(actions) do
    local lhs = keys[action]
    if lhs then
      vim.keymap.set('i', lhs, function()
        if fn() then
          return ''
        end
        return feed(lhs)
      end, { buffer = bufnr, expr = true, replace_keycodes = false, desc = 'phi-lsp: ' .. action })
    end
  end
end

local function on_attach(client, bufnr)
  if M.native() then
    -- Shown in this buffer; `enable = false` (:PhiLspToggle) switches off this
    -- client only, not other servers' inline completion.
    vim.lsp.inline_completion.enable(true, { bufnr = bufnr })
    vim.lsp.inline_completion.enable(config.options.settings.enable ~= false, { client_id = client.id })
  else
    require('phi_lsp.ghost').attach(bufnr)
  end
  set_keymaps(bufnr)
end

--- The settings as a JSON object even when empty (an empty Lua table is sent as []).
local function wire(settings)
  return next(settings) == nil and vim.empty_dict() or settings
end

local function lsp_config()
  local settings = wire(config.options.settings)
  return {
    cmd = config.options.cmd,
    filetypes = config.options.filetypes,
    root_markers = config.options.root_markers,
    init_options = settings,
    -- Answers workspace/configuration (section phiLsp) and is sent with
    -- workspace/didChangeConfiguration as {settings = {phiLsp = ...}}.
    settings = { phiLsp = settings },
    handlers = {
      ['phiLsp/status'] = status.on_status,
      ['phiLsp/verification'] = status.on_verification,
      -- One message per event, never a prompt (phi_lsp.notify).
      ['window/showMessage'] = notify.on_show_message,
      ['window/showMessageRequest'] = notify.on_show_message_request,
    },
    before_init = function()
      -- Spawned, not yet answering: "starting", not "stopped".
      if status.state.state ~= 'ready' then
        status.set({ state = 'starting' })
      end
    end,
    on_exit = function(code, signal)
      notify.reset()
      if M._restarting then
        return
      end
      -- Neovim itself says when a server quits with an error: no second message.
      local how = (code ~= 0 or signal ~= 0) and ('exit %d, signal %d'):format(code, signal) or 'exit 0'
      vim.schedule(function()
        if #get_clients({ name = M.name }) == 0 then
          status.set({ state = 'stopped', message = 'the server stopped (' .. how .. '); :PhiLspRestart' })
        end
      end)
    end,
  }
end

--- Configure and enable the server. Call once from your config.
---@param opts table|nil see phi_lsp.config.defaults
function M.setup(opts)
  config.set(opts)
  local group = vim.api.nvim_create_augroup('phi_lsp', { clear = true })
  vim.api.nvim_create_autocmd('LspAttach', {
    group = group,
    callback = function(args)
      local client = vim.lsp.get_client_by_id(args.data.client_id)
      if client and client.name == M.name then
        on_attach(client, args.buf)
      end
    end,
  })
  vim.api.nvim_create_autocmd('LspProgress', {
    group = group,
    callback = function(args)
      local client = vim.lsp.get_client_by_id(args.data.client_id)
      if client and client.name == M.name then
        status.on_progress(args.data.params and args.data.params.value)
      end
    end,
  })
  if vim.fn.executable(config.options.cmd[1]) ~= 1 then
    -- Said once here; the server is not started (Neovim would say it again).
    -- Short enough for one line; the full path and what to do: :checkhealth.
    notify.notify(
      ('server %s not found; see :checkhealth phi_lsp'):format(vim.fn.fnamemodify(config.options.cmd[1], ':t')),
      vim.log.levels.WARN
    )
    return
  end
  if vim.lsp.config and vim.lsp.enable then
    vim.lsp.config(M.name, lsp_config())
    vim.lsp.enable(M.name)
  else
    -- Neovim 0.10: start the client per buffer.
    vim.api.nvim_create_autocmd('FileType', {
      group = group,
      pattern = config.options.filetypes,
      callback = function(args)
        local cfg = lsp_config()
        cfg.name = M.name
        cfg.root_dir = vim.fs.root(args.buf, cfg.root_markers)
        cfg.root_markers = nil
        vim.lsp.start(cfg, { bufnr = args.buf })
      end,
    })
  end
end

--- Change server settings at runtime (sent as workspace/didChangeConfiguration).
---@param changes table camelCase server settings, e.g. {verify = "prefer"}
function M.set(changes)
  if changes.python ~= nil then -- the plugin option's name, not the server's
    changes = vim.tbl_extend('force', changes, { pythonPath = changes.python, python = nil })
  end
  local settings = wire(vim.tbl_extend('force', config.options.settings, changes))
  config.options.settings = settings
  if vim.lsp.config then
    vim.lsp.config(M.name, { init_options = settings, settings = { phiLsp = settings } })
  end
  for _, client in ipairs(get_clients({ name = M.name })) do
    client.settings = { phiLsp = settings }
    compat.notify(client, 'workspace/didChangeConfiguration', { settings = client.settings })
  end
end

--- Turn suggestions on or off (setting `enable`).
function M.toggle()
  local on = config.options.settings.enable == false
  M.set({ enable = on })
  if M.native() then
    for _, client in ipairs(get_clients({ name = M.name })) do
      vim.lsp.inline_completion.enable(on, { client_id = client.id })
    end
  else
    for _, buf in ipairs(vim.api.nvim_list_bufs()) do
      require('phi_lsp.ghost').clear(buf)
    end
  end
  notify.notify('suggestions ' .. (on and 'on' or 'off'))
end

--- Restart the server for every buffer it serves.
function M.restart()
  local bufs = {}
  M._restarting = true
  for _, client in ipairs(get_clients({ name = M.name })) do
    for buf in pairs(client.attached_buffers or {}) do
      bufs[#bufs + 1] = buf
    end
    compat.stop(client)
  end
  notify.reset()
  status.set({ state = 'starting' })
  vim.defer_fn(function()
    M._restarting = false
    for _, buf in ipairs(bufs) do
      if vim.api.nvim_buf_is_valid(buf) then
        vim.api.nvim_exec_autocmds('FileType', { buffer = buf })
      end
    end
  end, 500)
end

--- Run the docstring examples of the function under the cursor (`:PhiLspVerify`).
--- `done(result|nil, err|nil)` is called with the server's reply.
---@param done fun(result: table|nil, err: string|nil)|nil
function M.verify(done)
  local bufnr = vim.api.nvim_get_current_buf()
  local client = M.client(bufnr)
  if not client then
    local msg = 'phi-lsp is not attached to this buffer (see :checkhealth phi_lsp)'
    notify.notify(msg, vim.log.levels.WARN)
    if done then
      done(nil, msg)
    end
    return
  end
  local params = vim.lsp.util.make_position_params(0, client.offset_encoding)
  local cmd = { command = 'phiLsp.verifyFunction', arguments = { params.textDocument.uri, params.position } }
  local line = params.position.line
  compat.request(client, 'workspace/executeCommand', cmd, function(err, result)
    if err or type(result) ~= 'table' then
      local msg = 'phi-lsp verify failed: ' .. (err and err.message or 'no result')
      notify.notify(msg, vim.log.levels.ERROR)
      if done then
        done(nil, msg)
      end
      return
    end
    -- The server's window/showMessage is this event's message (contracts §4);
    -- the result shows as the badge, each example in :PhiLspVerify's log.
    status.show_verification(bufnr, line, result)
    M.last_verify = result
    if done then
      done(result, nil)
    end
  end, bufnr)
end

M.statusline = status.statusline

return M
