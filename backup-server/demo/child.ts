/** `pgferry` subcommands the demo runs as real child processes (the agent, the recovery). */
import { type ChildProcess, spawn } from 'node:child_process';
import * as path from 'node:path';

/** The program's entry point in the build (dist/shared/cli/main.js). */
export const PGFERRY_MAIN = path.resolve(__dirname, '../../shared/cli/main.js');

export class PgferryChild {
  readonly child: ChildProcess;
  private out = '';
  readonly exited: Promise<number | null>;

  constructor(args: string[], env: NodeJS.ProcessEnv = {}, onLine?: (line: string) => void) {
    this.child = spawn(process.execPath, [PGFERRY_MAIN, ...args], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let partial = '';
    const take = (d: Buffer) => {
      const text = d.toString();
      this.out += text;
      if (!onLine) return;
      partial += text;
      const lines = partial.split(/\r?\n|\r/);
      partial = lines.pop() ?? '';
      for (const l of lines) if (l.trim()) onLine(l);
    };
    this.child.stdout?.on('data', take);
    this.child.stderr?.on('data', take);
    this.exited = new Promise((resolve) => {
      this.child.on('exit', (code) => resolve(code));
      this.child.on('error', () => resolve(null));
    });
  }

  output(): string {
    return this.out;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** SIGTERM, then SIGKILL after `graceMs`. */
  async stop(graceMs = 5000): Promise<number | null> {
    if (!this.running) return this.exited;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    const code = await this.exited;
    clearTimeout(timer);
    return code;
  }

  /** For the process 'exit' handler: no waiting. */
  killNow(): void {
    if (this.running) this.child.kill('SIGKILL');
  }
}
