/**
 * Runs an operator's hook (snapshots.hooks.pre / post): a shell command line or an argv array, with
 * PGFERRY_* variables in its environment, a timeout (its whole process group is killed), and the tail of
 * its stderr kept for the run history.
 */
import { spawn } from 'node:child_process';

export interface HookResult {
  command: string;
  /** null when it did not exit normally (killed, timed out, could not start) */
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  /** the last few KiB of its standard error */
  stderr: string;
  durationMs: number;
  /** set when it could not be started */
  error?: string;
}

const STDERR_TAIL_BYTES = 4096;

export function hookSucceeded(r: HookResult): boolean {
  return r.exitCode === 0;
}

/** One line for logs and errors: "exited with 1: <stderr>" */
export function describeHook(r: HookResult): string {
  const how = r.error
    ? `could not start: ${r.error}`
    : r.timedOut
      ? 'timed out and was killed'
      : r.exitCode !== null
        ? `exited with ${r.exitCode}`
        : `was killed by ${r.signal}`;
  const err = r.stderr.trim();
  return err ? `${how}: ${err}` : how;
}

export function runHook(
  command: string | string[],
  env: Record<string, string>,
  timeoutMs: number,
): Promise<HookResult> {
  const started = Date.now();
  const [file, args] =
    typeof command === 'string' ? ['/bin/sh', ['-c', command]] : [command[0], command.slice(1)];
  const display = typeof command === 'string' ? command : command.join(' ');
  return new Promise((resolve) => {
    let stderr = Buffer.alloc(0);
    let timedOut = false;
    let settled = false;
    const finish = (r: Omit<HookResult, 'command' | 'durationMs' | 'stderr' | 'timedOut'>) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({
        command: display,
        ...r,
        timedOut,
        stderr: stderr.toString('utf8'),
        durationMs: Date.now() - started,
      });
    };
    const child = spawn(file, args, {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'ignore', 'pipe'],
      detached: true,
    });
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        if (child.pid) process.kill(-child.pid, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
    }, timeoutMs);
    child.stderr?.on('data', (d: Buffer) => {
      stderr = Buffer.concat([stderr, d]);
      if (stderr.length > STDERR_TAIL_BYTES) stderr = stderr.subarray(stderr.length - STDERR_TAIL_BYTES);
    });
    child.on('error', (e) => finish({ exitCode: null, signal: null, error: e.message }));
    child.on('close', (code, signal) => finish({ exitCode: code, signal: signal ?? null }));
  });
}
