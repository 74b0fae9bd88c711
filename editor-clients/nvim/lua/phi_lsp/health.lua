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

local REASONS = {
  ['--python/pythonPath'] = 'setup{ python = ... } (setting pythonPath)',
  VIRTUAL_ENV = '$VIRTUAL_ENV',
  ['.venv'] = '.venv/ at the project root',
  venv = 'venv/ at the project root',
  ["phi-lsp's own"] = "phi-lsp's own interpreter",
}

--- What the server will pick when it has not said (same order as the server:
--- docs/contracts.md §3): the python option, $VIRTUAL_ENV, .venv/ or venv/ at
--- the project root, phi-lsp's own.
local function guess_python(options)
  if options.python then
    return options.python, '--python/pythonPath'
  end
  if vim.env.VIRTUAL_ENV and vim.env.VIRTUAL_ENV ~= '' then
    return vim.env.VIRTUAL_ENV .. '/bin/python', 'VIRTUAL_ENV'
  end
  -- The project of the server's client, else of the buffer :checkhealth came from.
  local client = require('phi_lsp.compat').get_clients({ name = require('phi_lsp').name })[1]
  local alt = vim.fn.bufnr('#')
  local root = client and client.root_dir
    or (alt > 0 and vim.api.nvim_buf_get_name(alt) ~= '' and vim.fs.root(alt, options.root_markers or {}))
    or nil
  if root then
    for _, name in ipairs({ '.venv', 'venv' }) do
      local py = root .. '/' .. name .. '/bin/python'
      if vim.fn.executable(py) == 1 then
        return py, name
      end
    end
  end
  local exe = vim.fn.exepath(options.cmd[1])
  local own = exe ~= '' and vim.fs.dirname(exe) .. '/python' or nil
  if not (own and vim.fn.executable(own) == 1) then
    own = vim.fn.executable(options.cmd[1]) == 1 and options.cmd[1]:match('python') and options.cmd[1] or nil
  end
  return own or '(the interpreter phi-lsp runs with)', "phi-lsp's own"
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
    health.error(('server command %q not found'):format(cmd[1]), {
      'pip install -e /path/to/phi-lsp (the repository) in the venv you start Neovim from',
      'or setup({ cmd = { "/path/to/venv/bin/phi-lsp", "--stdio" } })',
    })
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

  health.start('phi-lsp verification interpreter')
  local py, why = status.state.python, status.state.pythonReason
  if py then
    health.ok(('examples run with %s (%s)'):format(py, REASONS[why] or tostring(why or '?')))
  else
    py, why = guess_python(config.options)
    health.info(('examples run with %s (%s; the server has not reported it yet)'):format(py, REASONS[why] or why))
  end
  if config.options.python and vim.fn.executable(config.options.python) ~= 1 then
    health.error(('python = %q is not an executable interpreter'):format(config.options.python))
  end

  health.start('phi-lsp messages')
  local notify = require('phi_lsp.notify')
  if notify.pending then
    health.warn('the server asks: ' .. notify.pending.message, ':PhiLspActions to answer')
  end
  health.info('last message: ' .. (notify.last and notify.last.message or 'none'))
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
  elseif s.state == 'loading' or s.state == 'starting' or s.state == 'downloading' then
    local pct = s.percent and (' %d %%'):format(math.floor(s.percent)) or ''
    health.info(('model %s%s'):format(s.state, pct) .. (detail ~= '' and (': ' .. detail) or ''))
  elseif s.state == 'disabled' then
    health.warn('suggestions disabled (setting enable = false; :PhiLspToggle)')
  else
    health.error('model state: ' .. tostring(s.state) .. (detail ~= '' and (': ' .. detail) or ''), 'see :LspLog')
  end
end

return M
