// phi-lsp for VS Code: starts `phi-lsp --stdio` for Python files. Ghost text
// comes from the server's textDocument/inlineCompletion, which
// vscode-languageclient >= 10 wires to VS Code's inline suggestions.
import * as cp from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as readline from 'node:readline';
import * as vscode from 'vscode';
import {
  DidChangeConfigurationNotification,
  ExecuteCommandRequest,
  LanguageClient,
  LanguageClientOptions,
  MessageActionItem,
  MessageType,
  ShowMessageNotification,
  ShowMessageParams,
  ShowMessageRequest,
  ShowMessageRequestParams,
  State,
  StreamInfo,
} from 'vscode-languageclient/node';
import { onPythonChanged, resolveServerCommand, SECTION, ServerCommand, serverKeys, serverSettings } from './settings';
import { StatusItem, StatusParams, VerificationParams, isVerification, verificationText } from './status';

const SHOW_OUTPUT = 'phiLsp.showOutput';
// Models the CPU warning was shown for, in the extension's global storage (a file
// written at once: globalState may not be flushed when the window is killed).
const CPU_WARNED = 'cpu-warned-models.json';
// The same message again within this long is the same event.
const REPEAT_MS = 5000;

let client: LanguageClient | undefined;
let serverProcess: cp.ChildProcess | undefined;
let output: vscode.LogOutputChannel;
let status: StatusItem;
let keys: string[];
let context: vscode.ExtensionContext;
const recent = new Map<string, number>();

export async function activate(ctx: vscode.ExtensionContext): Promise<void> {
  context = ctx;
  output = vscode.window.createOutputChannel('phi-lsp', { log: true });
  status = new StatusItem(SHOW_OUTPUT);
  keys = serverKeys(ctx.extension);
  ctx.subscriptions.push(
    output,
    status,
    vscode.commands.registerCommand(SHOW_OUTPUT, () => output.show(true)),
    vscode.commands.registerCommand('phiLsp.restartServer', restart),
    vscode.commands.registerCommand('phiLsp.toggleCompletions', toggleCompletions),
    vscode.commands.registerCommand('phiLsp.verifyCurrentFunction', verifyCurrentFunction),
    // For tests and bug reports: what the status bar item says in full.
    vscode.commands.registerCommand('phiLsp.statusTooltip', () => status.tooltip),
    vscode.workspace.onDidChangeConfiguration(onConfigurationChanged),
    { dispose: () => void stop() },
  );
  // The Python extension's interpreter is the examples' interpreter: follow it.
  void onPythonChanged(() => void sendSettings()).then((d) => d && ctx.subscriptions.push(d));
  await start();
}

export async function deactivate(): Promise<void> {
  await stop();
}

/**
 * Start the server ourselves (not through the client's `command` option): its
 * stderr goes to the log at each line's level, and a stop or restart that has to
 * kill it is logged as what it is, not as an error.
 */
function spawnServer(server: ServerCommand): Promise<StreamInfo> {
  return new Promise((resolve, reject) => {
    const cwd = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
    const proc = cp.spawn(server.command, server.args, { cwd, env: process.env, stdio: 'pipe' });
    proc.once('error', reject); // ENOENT, EACCES: before 'spawn'
    proc.once('spawn', () => {
      serverProcess = proc;
      readline.createInterface({ input: proc.stderr!, crlfDelay: Infinity }).on('line', logStderr);
      proc.once('exit', (code, signal) => {
        const how = signal ? `signal ${signal}` : `exit code ${code}`;
        if ((proc as { phiStopping?: boolean }).phiStopping || code === 0) output.info(`[phi-lsp] server stopped (${how})`);
        else output.warn(`[phi-lsp] the server exited unexpectedly (${how})`);
        if (serverProcess === proc) serverProcess = undefined;
      });
      resolve({ reader: proc.stdout!, writer: proc.stdin!, detached: false });
    });
  });
}

/** A line of the server's stderr, at its level: Python warnings are warnings,
 * progress bars are trace; only tracebacks and errors are errors. */
function logStderr(line: string): void {
  const text = line.replace(/\r/g, '').trimEnd();
  if (!text) return;
  if (/\d+%\|/.test(text) || /\bit\/s\]|\bB\/s\]/.test(text)) output.trace(text);
  else if (/Warning\b|^WARNING\b|\bwarn(ing)?:/i.test(text)) output.warn(text);
  else if (/^Traceback|^(ERROR|CRITICAL)\b|^\w*Error\b|Exception\b/.test(text)) output.error(text);
  else output.info(text);
}

async function start(): Promise<void> {
  status.setState({ state: 'starting' });
  let server: ServerCommand;
  try {
    server = await resolveServerCommand();
  } catch (e) {
    return reportStartFailure(e);
  }
  output.info(`[phi-lsp] starting ${server.command} ${server.args.join(' ')} (from ${server.source})`);
  const settings = await serverSettings(keys);
  showPythonHint(settings);
  const clientOptions: LanguageClientOptions = {
    documentSelector: [
      { scheme: 'file', language: 'python' },
      { scheme: 'untitled', language: 'python' },
    ],
    outputChannel: output,
    initializationOptions: settings,
    middleware: {
      // Toggle Completions acts at once, even while the server is busy.
      provideInlineCompletionItems: (document, position, ctx, token, next) =>
        enabled() ? next(document, position, ctx, token) : null,
      workspace: {
        // A server that pulls section phiLsp gets the same object as on push.
        configuration: async (params, token, next) => {
          const answer = await next(params, token);
          if (!Array.isArray(answer)) return answer;
          return Promise.all(
            params.items.map((item, i) =>
              item.section === SECTION
                ? serverSettings(keys, item.scopeUri ? vscode.Uri.parse(item.scopeUri) : undefined)
                : answer[i],
            ),
          );
        },
      },
    },
  };
  const c = new LanguageClient('phiLsp', 'phi-lsp', () => spawnServer(server), clientOptions);
  client = c;
  c.onDidChangeState((e) => {
    if (e.newState === State.Stopped && client === c && status.current.state.state !== 'error') {
      status.setState({ state: 'stopped', message: 'The server stopped. Run "phi-lsp: Restart Server".' });
    }
  });
  c.onNotification('phiLsp/status', (s: StatusParams) => {
    status.setState(s);
    if (s.state === 'error' && s.message) output.warn(`[phi-lsp] model error: ${s.message}`);
  });
  c.onNotification('phiLsp/verification', (v: VerificationParams) => status.setVerification(v));
  // These replace the client's defaults (registered after them at start).
  c.onNotification(ShowMessageNotification.type, showServerMessage);
  c.onRequest(ShowMessageRequest.type, showServerRequest);
  try {
    await c.start();
  } catch (e) {
    if (client === c) client = undefined;
    return reportStartFailure(e);
  }
  // A server that sends no phiLsp/status yet still answers: say it is running.
  if (status.current.state.state === 'starting') status.setState({ state: 'ready' });
}

function showPythonHint(settings: Record<string, unknown>): void {
  const py = String(settings.pythonPath ?? '');
  status.setPythonHint(py || undefined, '--python/pythonPath');
}

async function sendSettings(): Promise<void> {
  const settings = await serverSettings(keys);
  showPythonHint(settings);
  if (client?.isRunning()) {
    await client.sendNotification(DidChangeConfigurationNotification.type, { settings: { [SECTION]: settings } });
  }
}

function once(message: string): boolean {
  const now = Date.now();
  const last = recent.get(message);
  recent.set(message, now);
  return last === undefined || now - last > REPEAT_MS;
}

/** The server's window/showMessage: one toast per event; the CPU warning once per model. */
function showServerMessage(params: ShowMessageParams): void {
  const text = params.message;
  if (params.type === MessageType.Log || params.type === MessageType.Debug) {
    output.info(text);
    return;
  }
  if (!once(text)) return;
  if (params.type === MessageType.Warning && /\bCPU\b/.test(text)) {
    output.warn(text);
    const model = status.current.state.model || vscode.workspace.getConfiguration(SECTION).get<string>('model', '');
    if (!firstCpuWarning(model)) return;
  }
  switch (params.type) {
    case MessageType.Error:
      output.error(text);
      void vscode.window.showErrorMessage(text, 'Show Output').then((c) => c && output.show(true));
      break;
    case MessageType.Warning:
      void vscode.window.showWarningMessage(text);
      break;
    default:
      void vscode.window.showInformationMessage(text);
  }
}

/** True the first time ever for `model` (remembered in global storage). */
function firstCpuWarning(model: string): boolean {
  const file = path.join(context.globalStorageUri.fsPath, CPU_WARNED);
  let warned: string[] = [];
  try {
    warned = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch {
    // none yet (or unreadable: warn again rather than never)
  }
  if (warned.includes(model)) return false;
  try {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, JSON.stringify([...warned, model]));
  } catch (e) {
    output.warn(`[phi-lsp] could not remember the CPU warning: ${e}`);
  }
  return true;
}

/**
 * window/showMessageRequest: a toast with the server's actions. The ones VS Code
 * does itself (settings, log; the tiny model is written to the user's settings,
 * so it stays chosen) are done here; the choice goes back to the server too.
 */
async function showServerRequest(params: ShowMessageRequestParams): Promise<MessageActionItem | null> {
  const actions = params.actions ?? [];
  const show =
    params.type === MessageType.Error
      ? vscode.window.showErrorMessage
      : params.type === MessageType.Warning
        ? vscode.window.showWarningMessage
        : vscode.window.showInformationMessage;
  output.info(`[phi-lsp] ${params.message}`);
  const choice = await show(params.message, ...actions);
  if (!choice) return null;
  if (/tiny/i.test(choice.title)) {
    // After the answer has gone: the server acts on the answer, the setting keeps it.
    setTimeout(() => {
      void vscode.workspace.getConfiguration(SECTION).update('model', 'tiny', vscode.ConfigurationTarget.Global);
    }, 200);
  } else if (/setting/i.test(choice.title)) {
    void vscode.commands.executeCommand('workbench.action.openSettings', `@ext:${context.extension.id}`);
  } else if (/log|output/i.test(choice.title)) {
    output.show(true);
  }
  return choice;
}

async function stop(): Promise<void> {
  const c = client;
  const proc = serverProcess;
  client = undefined;
  if (proc) (proc as { phiStopping?: boolean }).phiStopping = true;
  if (c) {
    try {
      await c.stop(5000);
    } catch (e) {
      output.info(`[phi-lsp] the server did not stop cleanly: ${e}`);
    }
  }
  if (proc && proc.exitCode === null && proc.signalCode === null) {
    // Asked to exit and still there after 3 s: end it (logged as a stop, see spawnServer).
    const gone = new Promise<void>((r) => proc.once('exit', () => r()));
    const timer = setTimeout(() => proc.kill('SIGKILL'), 3000);
    await gone;
    clearTimeout(timer);
  }
}

async function restart(): Promise<void> {
  output.info('[phi-lsp] restarting the server');
  await stop();
  status.setVerification(undefined);
  await start();
}

function reportStartFailure(e: unknown): void {
  const message = e instanceof Error ? e.message : String(e);
  output.error(`[phi-lsp] could not start the server: ${message}`);
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
  if (e.affectsConfiguration(SECTION)) void sendSettings();
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
    })) as VerificationParams | null;
    if (!result) return undefined;
    // The server's window/showMessage says the outcome (contracts §4): no second toast.
    if (!isVerification(result)) {
      output.info(`[phi-lsp] verify at line ${pos.line + 1}: ${result.reason ?? 'no function here'}`);
      return result;
    }
    status.setVerification(result);
    output.info(`[phi-lsp] verify at line ${pos.line + 1}: ${verificationText(result)}`);
    for (const r of result.results ?? []) output.info(`  ${JSON.stringify(r)}`);
    return result;
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    output.error(`[phi-lsp] verify failed: ${message}`);
    void vscode.window.showErrorMessage(`phi-lsp: verification failed: ${message}`);
    return undefined;
  }
}



