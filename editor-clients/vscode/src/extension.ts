// phi-lsp for VS Code: starts `phi-lsp --stdio` for Python files. Ghost text
// comes from the server's textDocument/inlineCompletion, which
// vscode-languageclient >= 10 wires to VS Code's inline suggestions.
import * as vscode from 'vscode';
import {
  DidChangeConfigurationNotification,
  ExecuteCommandRequest,
  LanguageClient,
  LanguageClientOptions,
  ServerOptions,
  State,
} from 'vscode-languageclient/node';
import { resolveServerCommand, SECTION, serverKeys, serverSettings } from './settings';
import { StatusItem, StatusParams, VerificationParams, verificationText } from './status';

const SHOW_OUTPUT = 'phiLsp.showOutput';

let client: LanguageClient | undefined;
let output: vscode.LogOutputChannel;
let status: StatusItem;
let keys: string[];

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  output = vscode.window.createOutputChannel('phi-lsp', { log: true });
  status = new StatusItem(SHOW_OUTPUT);
  keys = serverKeys(context.extension);
  context.subscriptions.push(
    output,
    status,
    vscode.commands.registerCommand(SHOW_OUTPUT, () => output.show(true)),
    vscode.commands.registerCommand('phiLsp.restartServer', restart),
    vscode.commands.registerCommand('phiLsp.toggleCompletions', toggleCompletions),
    vscode.commands.registerCommand('phiLsp.verifyCurrentFunction', verifyCurrentFunction),
    vscode.workspace.onDidChangeConfiguration(onConfigurationChanged),
    { dispose: () => void stop() },
  );
  await start();
}

export async function deactivate(): Promise<void> {
  await stop();
}

async function start(): Promise<void> {
  status.setState({ state: 'starting' });
  let server;
  try {
    server = await resolveServerCommand();
  } catch (e) {
    return reportStartFailure(e);
  }
  output.appendLine(`[phi-lsp] starting ${server.command} ${server.args.join(' ')} (from ${server.source})`);
  // No `transport` here: the client would append a second --stdio to the args.
  const serverOptions: ServerOptions = { command: server.command, args: server.args };
  const clientOptions: LanguageClientOptions = {
    documentSelector: [
      { scheme: 'file', language: 'python' },
      { scheme: 'untitled', language: 'python' },
    ],
    outputChannel: output,
    initializationOptions: serverSettings(keys),
    middleware: {
      // Toggle Completions acts at once, even while the server is busy.
      provideInlineCompletionItems: (document, position, ctx, token, next) =>
        enabled() ? next(document, position, ctx, token) : null,
      workspace: {
        // A server that pulls section phiLsp gets the same object as on push.
        configuration: async (params, token, next) => {
          const answer = await next(params, token);
          if (!Array.isArray(answer)) return answer;
          return params.items.map((item, i) =>
            item.section === SECTION
              ? serverSettings(keys, item.scopeUri ? vscode.Uri.parse(item.scopeUri) : undefined)
              : answer[i],
          );
        },
      },
    },
  };
  const c = new LanguageClient('phiLsp', 'phi-lsp', serverOptions, clientOptions);
  client = c;
  c.onDidChangeState((e) => {
    if (e.newState === State.Stopped && client === c && status.current.state.state !== 'error') {
      status.setState({ state: 'stopped', message: 'The server stopped. Run "phi-lsp: Restart Server".' });
    }
  });
  c.onNotification('phiLsp/status', (s: StatusParams) => {
    status.setState(s);
    if (s.state === 'error' && s.message) output.appendLine(`[phi-lsp] model error: ${s.message}`);
  });
  c.onNotification('phiLsp/verification', (v: VerificationParams) => status.setVerification(v));
  try {
    await c.start();
  } catch (e) {
    if (client === c) client = undefined;
    return reportStartFailure(e);
  }
  // A server that sends no phiLsp/status yet still answers: say it is running.
  if (status.current.state.state === 'starting') status.setState({ state: 'ready' });
}

async function stop(): Promise<void> {
  const c = client;
  client = undefined;
  if (c) {
    try {
      await c.stop(5000);
    } catch (e) {
      output.appendLine(`[phi-lsp] stopping the server: ${e}`);
    }
  }
}

async function restart(): Promise<void> {
  output.appendLine('[phi-lsp] restarting the server');
  await stop();
  status.setVerification(undefined);
  await start();
}

function reportStartFailure(e: unknown): void {
  const message = e instanceof Error ? e.message : String(e);
  output.appendLine(`[phi-lsp] could not start the server: ${message}`);
  status.setState({ state: 'error', message });
  void vscode.window
    .showErrorMessage(`phi-lsp could not start: ${message}`, 'Open Settings', 'Show Output')
    .then((choice) => {
      if (choice === 'Open Settings') void vscode.commands.executeCommand('workbench.action.openSettings', 'phiLsp.serverPath');
      if (choice === 'Show Output') output.show(true);
    });
}

function enabled(): boolean {
  return vscode.workspace.getConfiguration(SECTION).get<boolean>('enable', true);
}

async function toggleCompletions(): Promise<void> {
  const cfg = vscode.workspace.getConfiguration(SECTION);
  const where = cfg.inspect<boolean>('enable');
  // Change the value where the user set it, so the toggle is not shadowed.
  const target =
    where?.workspaceFolderValue !== undefined
      ? vscode.ConfigurationTarget.WorkspaceFolder
      : where?.workspaceValue !== undefined
        ? vscode.ConfigurationTarget.Workspace
        : vscode.ConfigurationTarget.Global;
  const next = !enabled();
  await cfg.update('enable', next, target);
  vscode.window.setStatusBarMessage(`phi-lsp completions ${next ? 'on' : 'off'}`, 3000);
}

function onConfigurationChanged(e: vscode.ConfigurationChangeEvent): void {
  if (e.affectsConfiguration(`${SECTION}.serverPath`) || e.affectsConfiguration(`${SECTION}.serverArgs`)) {
    void restart();
    return;
  }
  if (e.affectsConfiguration(SECTION) && client?.isRunning()) {
    void client.sendNotification(DidChangeConfigurationNotification.type, {
      settings: { [SECTION]: serverSettings(keys) },
    });
  }
}

async function verifyCurrentFunction(): Promise<VerificationParams | undefined> {
  const editor = vscode.window.activeTextEditor;
  if (!editor || editor.document.languageId !== 'python') {
    void vscode.window.showWarningMessage('phi-lsp: open a Python file and put the cursor inside a function.');
    return undefined;
  }
  if (!client?.isRunning()) {
    void vscode.window.showWarningMessage('phi-lsp: the server is not running (see the output).');
    return undefined;
  }
  const pos = editor.selection.active;
  try {
    const result = (await client.sendRequest(ExecuteCommandRequest.type, {
      command: 'phiLsp.verifyFunction',
      arguments: [client.code2ProtocolConverter.asUri(editor.document.uri), { line: pos.line, character: pos.character }],
    })) as (VerificationParams & { results?: unknown[] }) | null;
    if (!result) return undefined;
    status.setVerification(result);
    output.appendLine(`[phi-lsp] verify at line ${pos.line + 1}: ${verificationText(result)}`);
    for (const r of result.results ?? []) output.appendLine(`  ${JSON.stringify(r)}`);
    return result;
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    output.appendLine(`[phi-lsp] verify failed: ${message}`);
    void vscode.window.showErrorMessage(`phi-lsp: verification failed: ${message}`);
    return undefined;
  }
}
