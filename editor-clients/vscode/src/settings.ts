// Reads the phiLsp.* configuration. The server's settings are exactly the
// keys this extension contributes minus the client-only ones, so the list
// lives in one place (package.json) and the server never sees keys it would
// warn about as unknown (docs/contracts.md §4).
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';

export const SECTION = 'phiLsp';
// Keys the extension uses itself; never sent to the server.
const CLIENT_ONLY = new Set(['serverPath', 'serverArgs']);

export type ServerSettings = Record<string, unknown>;

/** The server's settings keys, from this extension's contributed configuration. */
export function serverKeys(extension: vscode.Extension<unknown>): string[] {
  const props = extension.packageJSON?.contributes?.configuration?.properties ?? {};
  return Object.keys(props)
    .filter((k) => k.startsWith(SECTION + '.'))
    .map((k) => k.slice(SECTION.length + 1))
    .filter((k) => !CLIENT_ONLY.has(k));
}

/**
 * The settings object sent as initializationOptions and in didChangeConfiguration.
 * An empty pythonPath becomes the interpreter the Python extension selected for
 * the workspace (when it is installed); else it stays empty and the server detects.
 */
export async function serverSettings(keys: string[], scope?: vscode.Uri): Promise<ServerSettings> {
  const cfg = vscode.workspace.getConfiguration(SECTION, scope);
  const out: ServerSettings = {};
  for (const k of keys) out[k] = cfg.get(k);
  if (keys.includes('pythonPath') && !String(out.pythonPath ?? '').trim()) {
    const selected = await selectedPython(scope);
    if (selected) out.pythonPath = selected;
  }
  return out;
}

// The Python extension's API (ms-python.python), the parts used here.
interface PythonApi {
  environments?: {
    getActiveEnvironmentPath?(resource?: vscode.Uri): { path: string } | undefined;
    resolveEnvironment?(env: { path: string } | string): Promise<{ executable?: { uri?: vscode.Uri } } | undefined>;
    onDidChangeActiveEnvironmentPath?: vscode.Event<unknown>;
  };
}

async function pythonApi(): Promise<PythonApi | undefined> {
  const ext = vscode.extensions.getExtension<PythonApi>('ms-python.python');
  if (!ext) return undefined;
  try {
    return ext.isActive ? ext.exports : await ext.activate();
  } catch {
    return undefined; // an older or broken Python extension: the server detects
  }
}

/** The interpreter the Python extension selected for `scope`'s workspace folder. */
export async function selectedPython(scope?: vscode.Uri): Promise<string | undefined> {
  const envs = (await pythonApi())?.environments;
  const resource = scope ?? vscode.workspace.workspaceFolders?.[0]?.uri;
  const active = envs?.getActiveEnvironmentPath?.(resource);
  if (!active?.path) return undefined;
  try {
    const resolved = await envs?.resolveEnvironment?.(active);
    return resolved?.executable?.uri?.fsPath ?? active.path;
  } catch {
    return active.path;
  }
}

/** Calls `listener` when the Python extension's selected interpreter changes. */
export async function onPythonChanged(listener: () => void): Promise<vscode.Disposable | undefined> {
  const event = (await pythonApi())?.environments?.onDidChangeActiveEnvironmentPath;
  return event ? event(() => listener()) : undefined;
}

export interface ServerCommand {
  command: string;
  args: string[];
  /** How the command was found, for messages. */
  source: string;
}

/**
 * Where phi-lsp is: phiLsp.serverPath if set; else `phi-lsp` beside the selected
 * Python interpreter (the one a user installed it into with pip); else on PATH.
 */
export async function resolveServerCommand(): Promise<ServerCommand> {
  const cfg = vscode.workspace.getConfiguration(SECTION);
  const args = cfg.get<string[]>('serverArgs', ['--stdio']);
  const configured = expandHome(cfg.get<string>('serverPath', '').trim());
  if (configured) {
    // A bare name is looked up on PATH; a path must be there.
    const command = configured.includes(path.sep) ? configured : findOnPath(configured);
    if (!command || !isExecutable(command)) {
      throw new Error(
        configured.includes(path.sep)
          ? `phiLsp.serverPath ${configured} is not an executable file.`
          : `phiLsp.serverPath ${configured} was not found on PATH.`,
      );
    }
    return { command, args, source: 'phiLsp.serverPath' };
  }
  for (const interpreter of await interpretersWithServer()) {
    const candidate = path.join(path.dirname(interpreter), 'phi-lsp');
    if (isExecutable(candidate)) {
      return { command: candidate, args, source: `the Python environment of ${interpreter}` };
    }
  }
  const onPath = findOnPath('phi-lsp');
  if (onPath) return { command: onPath, args, source: 'PATH' };
  throw new Error(
    'phi-lsp not found. Install the phi-lsp repository into your Python environment, ' +
      'or set phiLsp.serverPath.',
  );
}

async function interpretersWithServer(): Promise<string[]> {
  const found: string[] = [];
  // The Python extension's choice, if it is installed (its API is optional here).
  const selected = await selectedPython();
  if (selected) found.push(selected);
  const configured = vscode.workspace.getConfiguration('python').get<string>('defaultInterpreterPath');
  if (configured) found.push(expandHome(configured));
  return found;
}

function expandHome(p: string): string {
  return p.startsWith('~/') ? path.join(process.env.HOME ?? '', p.slice(2)) : p;
}

function isExecutable(p: string): boolean {
  try {
    fs.accessSync(p, fs.constants.X_OK);
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}

function findOnPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (dir && isExecutable(path.join(dir, name))) return path.join(dir, name);
  }
  return undefined;
}
