// A stand-in for the Python extension, for tests/e2e/test_vscode.py only: the
// Marketplace is out of reach here. It selects envs.json's `first` interpreter
// and switches to `other` on "Fake Python: Select the Other Interpreter".
const fs = require('node:fs');
const path = require('node:path');
const vscode = require('vscode');

function activate(context) {
  const envs = JSON.parse(fs.readFileSync(path.join(__dirname, 'envs.json'), 'utf8'));
  let active = envs.first;
  const changed = new vscode.EventEmitter();
  context.subscriptions.push(
    changed,
    vscode.commands.registerCommand('fakePython.selectOther', () => {
      active = envs.other;
      changed.fire({ id: active, path: active, resource: undefined });
    }),
  );
  return {
    environments: {
      getActiveEnvironmentPath: () => ({ id: active, path: active }),
      resolveEnvironment: async (env) => {
        const p = typeof env === 'string' ? env : env.path;
        return { id: p, path: p, executable: { uri: vscode.Uri.file(p) } };
      },
      onDidChangeActiveEnvironmentPath: changed.event,
    },
  };
}

module.exports = { activate, deactivate() {} };
