-- Commands of phi_lsp; nothing starts until require("phi_lsp").setup({...}).
if vim.g.loaded_phi_lsp then
  return
end
vim.g.loaded_phi_lsp = true

vim.api.nvim_create_user_command('PhiLspVerify', function()
  require('phi_lsp').verify()
end, { desc = "phi-lsp: run the docstring examples of the function under the cursor" })

vim.api.nvim_create_user_command('PhiLspToggle', function()
  require('phi_lsp').toggle()
end, { desc = 'phi-lsp: turn suggestions on or off' })

vim.api.nvim_create_user_command('PhiLspRestart', function()
  require('phi_lsp').restart()
end, { desc = 'phi-lsp: restart the server' })

vim.api.nvim_create_user_command('PhiLspActions', function()
  require('phi_lsp.notify').choose()
end, { desc = 'phi-lsp: answer the question the server asked (e.g. which model to use)' })
