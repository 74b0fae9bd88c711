-- Ghost text for Neovim 0.10/0.11, which have no vim.lsp.inline_completion:
-- requests textDocument/inlineCompletion itself (debounced, the stale request
-- cancelled on every keystroke) and draws the answer with extmarks.
local M = {}

M.ns = vim.api.nvim_create_namespace('phi_lsp.ghost')
vim.api.nvim_set_hl(0, 'PhiLspGhost', { link = 'Comment', default = true })

local AUTOMATIC = 2 -- lsp.InlineCompletionTriggerKind.Automatic

---@class phi_lsp.GhostState
---@field items table[]      -- answer of the last request (each with the typed prefix)
---@field index integer
---@field tick integer       -- b:changedtick the items belong to
---@field cursor integer[]   -- cursor the items belong to
---@field timer? uv.uv_timer_t
---@field pending? {client: table, id: integer}
local states = {} ---@type table<integer, phi_lsp.GhostState>

local compat = require('phi_lsp.compat')
local request, cancel = compat.request, compat.cancel

--- An LSP character offset on `line` as a byte column.
local function byte_col(line, character, encoding)
  if encoding == 'utf-8' then
    return math.min(character, #line)
  end
  local ok, col = pcall(vim.str_byteindex, line, encoding, character, false) -- 0.11+
  if ok then
    return col
  end
  return vim.str_byteindex(line, character, encoding == 'utf-16') -- 0.10
end

local function clients(bufnr)
  return compat.get_clients({ bufnr = bufnr, name = 'phi_lsp' })
end

local function hide(bufnr)
  if vim.api.nvim_buf_is_valid(bufnr) then
    vim.api.nvim_buf_clear_namespace(bufnr, M.ns, 0, -1)
  end
end

--- Forget the shown suggestion and cancel the request in flight.
function M.clear(bufnr)
  local st = states[bufnr]
  if not st then
    return
  end
  if st.timer then
    st.timer:stop()
  end
  if st.pending then
    pcall(cancel, st.pending.client, st.pending.id)
    st.pending = nil
  end
  st.items, st.index = {}, 1
  hide(bufnr)
end

local function current(bufnr)
  local st = states[bufnr]
  if not st or #st.items == 0 then
    return nil
  end
  -- Shown only while the buffer and cursor are as they were for the request.
  local cursor = vim.api.nvim_win_get_cursor(0)
  if vim.api.nvim_buf_get_changedtick(bufnr) ~= st.tick or cursor[1] ~= st.cursor[1] or cursor[2] ~= st.cursor[2] then
    return nil
  end
  return st.items[st.index], st
end

local function show(bufnr)
  hide(bufnr)
  local item = current(bufnr)
  if not item then
    return
  end
  local lines = vim.split(item.rest, '\n', { plain = true })
  local row, col = item.cursor[1] - 1, item.cursor[2]
  local virt_lines = {}
  for i = 2, #lines do
    virt_lines[#virt_lines + 1] = { { lines[i], 'PhiLspGhost' } }
  end
  vim.api.nvim_buf_set_extmark(bufnr, M.ns, row, col, {
    virt_text = { { lines[1], 'PhiLspGhost' } },
    virt_text_pos = 'inline',
    virt_lines = #virt_lines > 0 and virt_lines or nil,
    hl_mode = 'combine',
  })
end

--- Items of an InlineCompletionList (or array) that continue what is typed.
local function normalize(result, bufnr, cursor, encoding)
  local raw = result and (result.items or result) or {}
  local out = {}
  for _, item in ipairs(raw) do
    local text = type(item.insertText) == 'table' and item.insertText.value or item.insertText
    if type(text) == 'string' and text ~= '' then
      local srow, scol = cursor[1] - 1, cursor[2]
      local erow, ecol = srow, scol
      if item.range then
        srow = item.range.start.line
        erow = item.range['end'].line
        local sline = vim.api.nvim_buf_get_lines(bufnr, srow, srow + 1, false)[1] or ''
        local eline = vim.api.nvim_buf_get_lines(bufnr, erow, erow + 1, false)[1] or ''
        scol = byte_col(sline, item.range.start.character, encoding)
        ecol = byte_col(eline, item.range['end'].character, encoding)
      end
      -- The text between the range start and the cursor is already typed:
      -- the ghost shows the rest; an item that does not continue it is dropped.
      -- (A range that starts after the cursor is not one we can show: skipped.)
      local ok, parts = pcall(vim.api.nvim_buf_get_text, bufnr, srow, scol, cursor[1] - 1, cursor[2], {})
      local typed = ok and table.concat(parts, '\n') or nil
      if typed and vim.startswith(text, typed) and #text > #typed then
        out[#out + 1] = {
          text = text,
          rest = text:sub(#typed + 1),
          range = { srow, scol, erow, ecol },
          cursor = cursor,
        }
      end
    end
  end
  return out
end

local function do_request(bufnr)
  local st = states[bufnr]
  if not st or vim.api.nvim_get_current_buf() ~= bufnr or not vim.api.nvim_get_mode().mode:match('^i') then
    return
  end
  if require('phi_lsp.config').options.settings.enable == false then
    return
  end
  local client = clients(bufnr)[1]
  if not client then
    return
  end
  if st.pending then
    pcall(cancel, st.pending.client, st.pending.id)
  end
  local tick = vim.api.nvim_buf_get_changedtick(bufnr)
  local cursor = vim.api.nvim_win_get_cursor(0)
  local params = vim.lsp.util.make_position_params(0, client.offset_encoding)
  params.context = { triggerKind = AUTOMATIC }
  local ok, id
  ok, id = request(client, 'textDocument/inlineCompletion', params, function(err, result)
    if st.pending and st.pending.id == id then
      st.pending = nil
    end
    if err or vim.api.nvim_buf_get_changedtick(bufnr) ~= tick then
      return -- failed, or the buffer moved on: a stale answer is dropped
    end
    local c = vim.api.nvim_win_get_cursor(0)
    if c[1] ~= cursor[1] or c[2] ~= cursor[2] then
      return
    end
    st.items, st.index, st.tick, st.cursor = normalize(result, bufnr, cursor, client.offset_encoding), 1, tick, cursor
    show(bufnr)
  end, bufnr)
  if ok and id then
    st.pending = { client = client, id = id }
  end
end

local function schedule_request(bufnr)
  local st = states[bufnr]
  M.clear(bufnr)
  st.timer = st.timer or vim.uv.new_timer()
  st.timer:start(require('phi_lsp.config').options.debounce_ms, 0, vim.schedule_wrap(function()
    do_request(bufnr)
  end))
end

--- Start ghost text in `bufnr` (idempotent).
function M.attach(bufnr)
  if states[bufnr] then
    return
  end
  states[bufnr] = { items = {}, index = 1, tick = -1, cursor = { 0, 0 } }
  local group = vim.api.nvim_create_augroup('phi_lsp.ghost.' .. bufnr, { clear = true })
  vim.api.nvim_create_autocmd({ 'InsertEnter', 'TextChangedI', 'CursorMovedI' }, {
    group = group,
    buffer = bufnr,
    callback = function()
      -- CursorMovedI follows every TextChangedI: one request per keystroke is enough.
      local st = states[bufnr]
      local cursor = vim.api.nvim_win_get_cursor(0)
      local tick = vim.api.nvim_buf_get_changedtick(bufnr)
      if st.last_tick == tick and st.last_cursor and st.last_cursor[1] == cursor[1] and st.last_cursor[2] == cursor[2] then
        return
      end
      st.last_tick, st.last_cursor = tick, cursor
      schedule_request(bufnr)
    end,
  })
  vim.api.nvim_create_autocmd({ 'InsertLeave', 'BufLeave' }, {
    group = group,
    buffer = bufnr,
    callback = function()
      local st = states[bufnr]
      st.last_tick, st.last_cursor = nil, nil
      M.clear(bufnr)
    end,
  })
  vim.api.nvim_create_autocmd({ 'BufWipeout', 'LspDetach' }, {
    group = group,
    buffer = bufnr,
    callback = function()
      M.detach(bufnr)
    end,
  })
end

function M.detach(bufnr)
  local st = states[bufnr]
  if not st then
    return
  end
  M.clear(bufnr)
  if st.timer then
    st.timer:close()
  end
  states[bufnr] = nil
  pcall(vim.api.nvim_del_augroup_by_name, 'phi_lsp.ghost.' .. bufnr)
end

--- The suggestion shown in `bufnr` (nil when none): {text, rest, range, cursor}.
function M.current(bufnr)
  return (current(bufnr or vim.api.nvim_get_current_buf()))
end

--- Insert the shown suggestion. Returns false when there is none, so that a
--- key mapping can fall back to the key's own meaning.
---@return boolean
function M.accept(bufnr)
  bufnr = bufnr or vim.api.nvim_get_current_buf()
  local item = current(bufnr)
  if not item then
    return false
  end
  M.clear(bufnr)
  -- Deferred: accept() may run from an <expr> mapping, where text is locked.
  vim.schedule(function()
    local lines = vim.split(item.text, '\n', { plain = true })
    local r = item.range
    vim.api.nvim_buf_set_text(bufnr, r[1], r[2], r[3], r[4], lines)
    local last_row = r[1] + #lines
    local last_col = (#lines == 1 and r[2] or 0) + #lines[#lines]
    vim.api.nvim_win_set_cursor(0, { last_row, last_col })
    -- Moving the cursor here is not typing: do not ask again for this spot.
    local st = states[bufnr]
    if st then
      st.last_tick, st.last_cursor = vim.api.nvim_buf_get_changedtick(bufnr), { last_row, last_col }
    end
  end)
  return true
end

--- The part of `rest` (the suggestion not yet in the buffer) that "accept the
--- next word" (kind 'word') or "the next line" ('line') inserts: a word is the
--- blanks before it and a run of word characters, or of other non-blanks; a line
--- is the rest of the current line, or at its end, the line break and the whole
--- next line (with its indentation).
---@param rest string
---@param kind 'word'|'line'
---@return string
function M.partial(rest, kind)
  if kind == 'line' then
    local from = rest:sub(1, 1) == '\n' and 2 or 1
    local nl = rest:find('\n', from, true)
    return nl and rest:sub(1, nl - 1) or rest
  end
  local lead = rest:match('^\n?[ \t]*') or ''
  local after = rest:sub(#lead + 1)
  local word = after:match('^[%w_]+') or after:match('^[^%w_%s]+') or ''
  if lead == '' and word == '' then
    return rest:sub(1, 1)
  end
  return lead .. word
end

--- Insert `text` at the cursor of the current window (insert mode), the cursor
--- after it.
---@param bufnr integer
---@param text string
function M.insert_at_cursor(bufnr, text)
  local cursor = vim.api.nvim_win_get_cursor(0)
  local lines = vim.split(text, '\n', { plain = true })
  local row, col = cursor[1] - 1, cursor[2]
  vim.api.nvim_buf_set_text(bufnr, row, col, row, col, lines)
  local last_row = row + #lines
  local last_col = (#lines == 1 and col or 0) + #lines[#lines]
  vim.api.nvim_win_set_cursor(0, { last_row, last_col })
  return last_row, last_col
end

--- Insert the next word / line of the shown suggestion; the rest stays shown.
---@param kind 'word'|'line'
---@return boolean false when no suggestion is shown
function M.accept_partial(kind, bufnr)
  bufnr = bufnr or vim.api.nvim_get_current_buf()
  local item, st = current(bufnr)
  if not item then
    return false
  end
  local part = M.partial(item.rest, kind)
  vim.schedule(function()
    local row, col = M.insert_at_cursor(bufnr, part)
    local rest = item.rest:sub(#part + 1)
    local tick = vim.api.nvim_buf_get_changedtick(bufnr)
    -- Our own edit is no keystroke: no new request for it.
    st.last_tick, st.last_cursor = tick, { row, col }
    if rest:find('%S') then
      -- What is left, anchored at the new cursor (accept inserts it there).
      st.items = { { text = rest, rest = rest, range = { row - 1, col, row - 1, col }, cursor = { row, col } } }
      st.index, st.tick, st.cursor = 1, tick, { row, col }
      show(bufnr)
    else
      M.clear(bufnr)
    end
  end)
  return true
end

--- Show the next (count > 0) or previous (count < 0) suggestion.
---@return boolean
function M.select(count, bufnr)
  bufnr = bufnr or vim.api.nvim_get_current_buf()
  local item, st = current(bufnr)
  if not item then
    return false
  end
  st.index = (st.index - 1 + count) % #st.items + 1
  show(bufnr)
  return true
end

--- Hide the suggestion. Returns false when none was shown.
---@return boolean
function M.dismiss(bufnr)
  bufnr = bufnr or vim.api.nvim_get_current_buf()
  if not current(bufnr) then
    return false
  end
  M.clear(bufnr)
  return true
end

return M
