// The status bar item: model state (phiLsp/status) and the last suggestion's
// verification (phiLsp/verification). Clicking it shows the output channel.
import * as vscode from 'vscode';

/** phiLsp/status (docs/contracts.md §4). */
export interface StatusParams {
  state: 'starting' | 'downloading' | 'loading' | 'ready' | 'error' | 'disabled' | 'stopped' | string;
  model?: string;
  device?: string;
  message?: string;
  /** 0–100 while downloading / loading, when known. */
  percent?: number | null;
  /** The interpreter verification runs examples with, and why (contracts §3/§4). */
  python?: string;
  pythonReason?: string;
}

/** phiLsp/verification, and the reply of phiLsp.verifyFunction. */
export interface VerificationParams {
  status: 'passed' | 'failed' | 'error' | 'timeout' | 'no-examples' | 'no-function' | string;
  passed?: number;
  failed?: number;
  candidatesTried?: number;
  reason?: string;
  results?: unknown[];
}

const ICONS: Record<string, string> = {
  starting: '$(sync~spin)',
  downloading: '$(cloud-download)',
  loading: '$(sync~spin)',
  ready: '$(sparkle)',
  error: '$(error)',
  disabled: '$(circle-slash)',
  stopped: '$(debug-stop)',
};

const PYTHON_REASONS: Record<string, string> = {
  '--python/pythonPath': 'setting phiLsp.pythonPath or the Python extension',
  VIRTUAL_ENV: 'VIRTUAL_ENV',
  '.venv': '.venv at the project root',
  venv: 'venv at the project root',
  "phi-lsp's own": "phi-lsp's own interpreter",
};

/**
 * False for a verifyFunction reply that is no verification: the cursor is not
 * inside a function ("no function at line N"). Not an ✗.
 */
export function isVerification(v: VerificationParams): boolean {
  if (v.status === 'no-function') return false;
  const none =
    v.status === 'error' &&
    (v.passed ?? 0) + (v.failed ?? 0) === 0 &&
    (v.results ?? []).length === 0 &&
    /^no function/i.test(v.reason ?? '');
  return !none;
}

/** "✓ 2/2", "✗ 1/3", "–": the short form shown in the status bar. */
export function verificationBadge(v: VerificationParams): string {
  const passed = v.passed ?? 0;
  const total = passed + (v.failed ?? 0);
  switch (v.status) {
    case 'passed':
      return `✓ ${passed}/${total}`;
    case 'failed':
      return `✗ ${passed}/${total}`;
    case 'timeout':
      return '✗ timeout';
    case 'error':
      return '✗ error';
    default:
      return '–';
  }
}

export function verificationText(v: VerificationParams): string {
  const passed = v.passed ?? 0;
  const total = passed + (v.failed ?? 0);
  switch (v.status) {
    case 'passed':
      return `passed ${passed}/${total} docstring examples`;
    case 'failed':
      return `failed: ${passed}/${total} docstring examples pass`;
    case 'timeout':
      return 'failed: the examples timed out';
    case 'error':
      return `failed: the examples could not run${v.reason ? ` (${v.reason})` : ''}`;
    default:
      return 'no docstring examples to check';
  }
}

/** "Phi starting", "Phi downloading 42 %", "Phi ready": the text after the icon. */
export function stateText(s: StatusParams): string {
  const pct =
    typeof s.percent === 'number' && ['downloading', 'loading', 'starting'].includes(s.state)
      ? ` ${Math.floor(s.percent)} %`
      : '';
  return `Phi ${s.state}${pct}`;
}

export class StatusItem implements vscode.Disposable {
  private readonly item: vscode.StatusBarItem;
  private state: StatusParams = { state: 'starting' };
  private verification: VerificationParams | undefined;
  private python: { path?: string; reason?: string } = {};

  constructor(showOutputCommand: string) {
    this.item = vscode.window.createStatusBarItem('phiLsp.status', vscode.StatusBarAlignment.Right, 100);
    this.item.name = 'phi-lsp';
    this.item.command = showOutputCommand;
    this.render();
    this.item.show();
  }

  setState(s: StatusParams): void {
    // A badge from before a state change belongs to another model or server.
    if (s.state !== 'ready' || this.state.state !== 'ready') this.verification = undefined;
    if (s.python) this.python = { path: s.python, reason: s.pythonReason };
    this.state = s;
    this.render();
  }

  setVerification(v: VerificationParams | undefined): void {
    if (v && !isVerification(v)) return;
    this.verification = v;
    this.render();
  }

  /** What the extension sent as pythonPath, until the server says what it uses. */
  setPythonHint(path: string | undefined, reason: string): void {
    if (!this.python.path || this.python.reason !== '--python/pythonPath') {
      this.python = path ? { path, reason } : {};
    }
    this.render();
  }

  get current(): { state: StatusParams; verification?: VerificationParams } {
    return { state: this.state, verification: this.verification };
  }

  get tooltip(): string {
    return typeof this.item.tooltip === 'string' ? this.item.tooltip : '';
  }

  private render(): void {
    const s = this.state;
    const icon = ICONS[s.state] ?? '$(question)';
    const badge = this.verification && s.state === 'ready' ? ` ${verificationBadge(this.verification)}` : '';
    this.item.text = `${icon} ${stateText(s)}${badge}`;
    const lines = [`phi-lsp: ${s.state}`];
    const model = s.model ? `${s.model}${s.device ? ` on ${s.device}` : ''}` : '';
    if (model) lines.push(`model: ${model}`);
    if (s.message && s.message !== model) lines.push(s.message);
    if (this.python.path) {
      const why = PYTHON_REASONS[this.python.reason ?? ''] ?? this.python.reason ?? '';
      lines.push(`examples run with: ${this.python.path}${why ? ` (${why})` : ''}`);
    }
    if (this.verification && s.state === 'ready') lines.push(`last suggestion: ${verificationText(this.verification)}`);
    lines.push('Click to show the output.');
    this.item.tooltip = lines.join('\n');
    this.item.backgroundColor =
      s.state === 'error' ? new vscode.ThemeColor('statusBarItem.errorBackground') : undefined;
  }

  dispose(): void {
    this.item.dispose();
  }
}
