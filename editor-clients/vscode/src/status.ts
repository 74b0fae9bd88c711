// The status bar item: model state (phiLsp/status) and the last suggestion's
// verification (phiLsp/verification). Clicking it shows the output channel.
import * as vscode from 'vscode';

/** phiLsp/status (docs/contracts.md §4). */
export interface StatusParams {
  state: 'loading' | 'ready' | 'error' | 'disabled' | string;
  model?: string;
  device?: string;
  message?: string;
}

/** phiLsp/verification, and the reply of phiLsp.verifyFunction. */
export interface VerificationParams {
  status: 'passed' | 'failed' | 'error' | 'timeout' | 'no-examples' | string;
  passed?: number;
  failed?: number;
  candidatesTried?: number;
}

const ICONS: Record<string, string> = {
  starting: '$(sync~spin)',
  loading: '$(sync~spin)',
  ready: '$(sparkle)',
  error: '$(error)',
  disabled: '$(circle-slash)',
  stopped: '$(debug-stop)',
};

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
      return 'failed: the examples could not run';
    default:
      return 'no docstring examples to check';
  }
}

export class StatusItem implements vscode.Disposable {
  private readonly item: vscode.StatusBarItem;
  private state: StatusParams = { state: 'starting' };
  private verification: VerificationParams | undefined;

  constructor(showOutputCommand: string) {
    this.item = vscode.window.createStatusBarItem('phiLsp.status', vscode.StatusBarAlignment.Right, 100);
    this.item.name = 'phi-lsp';
    this.item.command = showOutputCommand;
    this.render();
    this.item.show();
  }

  setState(s: StatusParams): void {
    this.state = s;
    this.render();
  }

  setVerification(v: VerificationParams | undefined): void {
    this.verification = v;
    this.render();
  }

  get current(): { state: StatusParams; verification?: VerificationParams } {
    return { state: this.state, verification: this.verification };
  }

  private render(): void {
    const s = this.state;
    const icon = ICONS[s.state] ?? '$(question)';
    const badge = this.verification ? ` ${verificationBadge(this.verification)}` : '';
    this.item.text = `${icon} Phi ${s.state}${badge}`;
    const lines = [`phi-lsp: ${s.state}`];
    if (s.model) lines.push(`model: ${s.model}${s.device ? ` on ${s.device}` : ''}`);
    if (s.message) lines.push(s.message);
    if (this.verification) lines.push(`last suggestion: ${verificationText(this.verification)}`);
    lines.push('Click to show the output.');
    this.item.tooltip = lines.join('\n');
    this.item.backgroundColor =
      s.state === 'error' ? new vscode.ThemeColor('statusBarItem.errorBackground') : undefined;
  }

  dispose(): void {
    this.item.dispose();
  }
}
