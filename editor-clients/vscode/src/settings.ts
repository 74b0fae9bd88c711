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

/** The settings object sent as initializationOptions and in didChangeConfiguration. */
export function serverSettings(keys: string[], scope?: vscode.ConfigurationScope): ServerSettings {
  const cfg = vscode.workspace.getConfiguration(SECTION, scope);
  const out: ServerSettings = {};
  for (const k of keys) out[k] = cfg.get(k);
  return out;
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
  for (const interpreter of await selectedInterpreters()) {
    const candidate = path.join(path.dirname(interpreter), 'phi-lsp');
    if (isExecutable(candidate)) {
      return { command: candidate, args, source: `the Python environment of ${interpreter}` };
    }
  }
  const onPath = findOnPath('phi-lsp');
  if (onPath) return { command: onPath, args, source: 'PATH' };
  throw new Error(
    'phi-lsp was not found beside the selected Python interpreter nor on PATH. ' +
      'Install it (pip install phi-lsp) or set phiLsp.serverPath to the phi-lsp executable.',
  );
}

async function selectedInterpreters(): Promise<string[]> {
  const found: string[] = [];
  // The Python extension's choice, if it is installed (its API is optional here).
  const python = vscode.extensions.getExtension('ms-python.python');
  if (python) {
    try {
      const api: any = python.isActive ? python.exports : await python.activate();
      const env = api?.environments?.getActiveEnvironmentPath?.();
      if (env?.path) found.push(env.path);
    } catch {
      // An inactive or older Python extension: fall back to the setting and PATH.
    }
  }
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
