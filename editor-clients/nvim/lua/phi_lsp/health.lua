-- :checkhealth phi_lsp — is the server there, which version, is the model loaded.
local M = {}

local health = vim.health

--- The server's argv with --version in place of the transport flags.
local function version_cmd(cmd)
  local out = {}
  for _, a in ipairs(cmd) do
    if a ~= '--stdio' and a ~= '--tcp' then
      out[#out + 1] = a
    end
  end
  out[#out + 1] = '--version'
  return out
end

function M.check()
  local config = require('phi_lsp.config')
  local status = require('phi_lsp.status')
  local phi = require('phi_lsp')

  health.start('Neovim')
  local v = vim.version()
  local version = ('%d.%d.%d'):format(v.major, v.minor, v.patch)
  if vim.lsp.inline_completion then
    health.ok(('Neovim %s: built-in inline completion (vim.lsp.inline_completion)'):format(version))
  elseif vim.fn.has('nvim-0.10') == 1 then
    health.ok(('Neovim %s: ghost text drawn by phi_lsp (0.12 has it built in)'):format(version))
  else
    health.error(('Neovim %s is too old'):format(version), 'phi_lsp needs Neovim 0.10 or newer')
  end

  health.start('phi-lsp server')
  local cmd = config.options.cmd or config.default_cmd()
  local exe = vim.fn.exepath(cmd[1])
  if exe == '' then
    health.error(
      ('server command %q not found'):format(cmd[1]),
      { 'pip install phi-lsp (in the environment you start Neovim from)', 'or setup({ cmd = { "/path/to/phi-lsp", "--stdio" } })' }
    )
    return
  end
  health.ok(('command: %s (%s)'):format(table.concat(cmd, ' '), exe))
  local ok, res = pcall(function()
    return vim.system(version_cmd(cmd), { text = true }):wait(20000)
  end)
  if ok and res.code == 0 then
    health.ok('version: ' .. vim.trim(res.stdout ~= '' and res.stdout or res.stderr))
  else
    health.error('`--version` failed: ' .. (ok and vim.trim((res.stderr or '') .. ' exit ' .. tostring(res.code)) or tostring(res)))
  end

  health.start('phi-lsp model')
  local settings = config.options.settings
  health.info('model: ' .. tostring(settings.model or 'microsoft/phi-1 (server default)'))
  health.info('verify: ' .. tostring(settings.verify or 'off (server default)'))
  if not phi.client() and #require('phi_lsp.compat').get_clients({ name = phi.name }) == 0 then
    health.info('server not running: open a Python file to start it')
    return
  end
  local s = status.state
  local detail = table.concat(vim.tbl_filter(function(x)
    return x ~= nil and x ~= ''
  end, { s.model, s.device, s.message }), ', ')
  if s.state == 'ready' then
    health.ok('model ready' .. (detail ~= '' and (': ' .. detail) or ''))
  elseif s.state == 'loading' or s.state == 'starting' then
    health.info('model loading' .. (detail ~= '' and (': ' .. detail) or ''))
  elseif s.state == 'disabled' then
    health.warn('suggestions disabled (setting enable = false; :PhiLspToggle)')
  else
    health.error('model state: ' .. tostring(s.state) .. (detail ~= '' and (': ' .. detail) or ''), 'see :LspLog')
  end
end

return M
