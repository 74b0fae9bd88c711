-- Every message phi_lsp shows goes through here: one vim.notify per event, one
-- line, so that Neovim's built-in message area never stops at a "Press ENTER"
-- prompt. The server's window/showMessage and window/showMessageRequest are
-- routed here too (docs/contracts.md §4), so nothing is said twice.
local M = {}

-- Same text again within this long: the same event (e.g. two buffers attaching).
local REPEAT_MS = 5000
local HINT = ' (:PhiLspActions)'

local last = {} ---@type table<string, integer>
local cpu_warned = {} ---@type table<string, boolean>

---@type {message: string, actions: table[], co: thread|nil}|nil
M.pending = nil
--- The last message shown, in full (for :checkhealth).
---@type {message: string, level: integer}|nil
M.last = nil

--- True when vim.notify is Neovim's own (it echoes; a long text makes a prompt).
--- nvim-notify, noice, snacks... replace it and show any length.
local function builtin()
  local info = debug.getinfo(vim.notify, 'S')
  return info ~= nil and info.source:find('vim/_editor.lua', 1, true) ~= nil
end

--- `msg` cut to fit one line of the message area (… marks the cut).
---@param msg string
---@param keep_tail? string kept at the end whatever the cut
---@return string
function M.fit(msg, keep_tail)
  keep_tail = keep_tail or ''
  msg = msg:gsub('%s*\n%s*', ' ')
  local width = vim.v.echospace
  if not width or width <= 0 then
    width = vim.o.columns - 12
  end
  width = math.max(width - 1, 20)
  if vim.fn.strdisplaywidth(msg .. keep_tail) <= width then
    return msg .. keep_tail
  end
  local room = width - vim.fn.strdisplaywidth(keep_tail) - 1
  return vim.fn.strcharpart(msg, 0, math.max(room, 8)) .. '…' .. keep_tail
end

--- Show `msg` once (a repeat within 5 s is dropped), prefixed "phi-lsp: ".
---@param msg string
---@param level? integer vim.log.levels
---@param opts? {tail?: string}
function M.notify(msg, level, opts)
  level = level or vim.log.levels.INFO
  if not vim.startswith(msg, 'phi-lsp') then
    msg = 'phi-lsp: ' .. msg
  end
  local now = vim.uv.now()
  if last[msg] and now - last[msg] < REPEAT_MS then
    return
  end
  last[msg] = now
  M.last = { message = msg .. ((opts and opts.tail) or ''), level = level }
  M.last_at = now
  if builtin() then
    msg = M.fit(msg, opts and opts.tail)
  elseif opts and opts.tail then
    msg = msg .. opts.tail
  end
  vim.notify(msg, level, { title = 'phi-lsp' })
end

local LEVELS = {
  [1] = vim.log.levels.ERROR,
  [2] = vim.log.levels.WARN,
  [3] = vim.log.levels.INFO,
  [4] = vim.log.levels.DEBUG, -- Log: the log file / :LspLog, not the screen
}

--- The CPU warning (contracts §4: a Warning whose text says CPU): once per model.
local function cpu_warning_seen(params)
  if params.type ~= 2 or not tostring(params.message):find('CPU', 1, true) then
    return false
  end
  local model = require('phi_lsp.status').state.model or ''
  if cpu_warned[model] then
    return true
  end
  cpu_warned[model] = true
  return false
end

--- Handler for the server's window/showMessage.
function M.on_show_message(_, params)
  if type(params) ~= 'table' or type(params.message) ~= 'string' then
    return vim.NIL
  end
  local level = LEVELS[params.type] or vim.log.levels.INFO
  if level == vim.log.levels.DEBUG or cpu_warning_seen(params) then
    return vim.NIL
  end
  M.notify(params.message, level)
  return vim.NIL
end

--- Handler for window/showMessageRequest: never a prompt. The message is shown
--- once with a hint; :PhiLspActions answers it. (Neovim runs server requests in
--- a coroutine: yielding keeps the request open until the user chooses.)
function M.on_show_message_request(_, params)
  if type(params) ~= 'table' or type(params.message) ~= 'string' then
    return vim.NIL
  end
  local level = LEVELS[params.type] or vim.log.levels.INFO
  local actions = params.actions or {}
  if #actions == 0 then
    M.notify(params.message, level)
    return vim.NIL
  end
  local co, is_main = coroutine.running()
  local open = co ~= nil and not is_main
  -- A newer request replaces an unanswered one (which is answered "no choice").
  local old = M.pending
  M.pending = { message = params.message, actions = actions, co = open and co or nil }
  if old and old.co then
    vim.schedule(function()
      coroutine.resume(old.co, vim.NIL)
    end)
  end
  M.notify(params.message, level, { tail = open and HINT or nil })
  if open then
    return coroutine.yield()
  end
  return vim.NIL
end

--- :PhiLspActions — pick one of the actions the server offered.
function M.choose()
  local p = M.pending
  if not p then
    M.notify('nothing to choose: the server has not asked anything', vim.log.levels.INFO)
    return
  end
  vim.ui.select(p.actions, {
    prompt = p.message,
    format_item = function(a)
      return a.title
    end,
  }, function(choice)
    if M.pending ~= p then
      return
    end
    if choice == nil then
      return -- keep it open: the user may choose later
    end
    M.pending = nil
    vim.schedule(function()
      if p.co then
        coroutine.resume(p.co, choice)
      end
      -- The tiny model also becomes the plugin's setting, so that a later settings
      -- change does not bring back the missing model (VS Code does the same).
      if tostring(choice.title):lower():find('tiny', 1, true) then
        require('phi_lsp').set({ model = 'tiny' })
      end
    end)
  end)
end

--- Forget an unanswered request (its server is gone).
function M.reset()
  M.pending = nil
end

return M
