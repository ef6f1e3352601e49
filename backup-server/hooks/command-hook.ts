/**
 * The command hook: a shell command line (run by /bin/sh -c) or an argv array, with the transition in
 * PGFERRY_* environment variables and as one JSON document on its standard input. Exit 0 is success;
 * on abort (timeout, server stop) its whole process group is killed.
 */
import { spawn } from 'node:child_process';
import { PgferryError } from '../../shared/errors';
import type { Hook } from './hook';
import { hookEnvironment, type HookPayload } from './hook-event';

const STDERR_TAIL_BYTES = 2048;

export function commandHook(command: string | string[]): Hook {
  const [file, args] =
    typeof command === 'string' ? ['/bin/sh', ['-c', command]] : [command[0], command.slice(1)];
  const display = typeof command === 'string' ? command : command.join(' ');
  return {
    kind: 'command',
    target: display,
    run: (payload: HookPayload, signal: AbortSignal) =>
      new Promise<void>((resolve, reject) => {
        let stderr = '';
        const child = spawn(file, args, {
          env: { ...process.env, ...hookEnvironment(payload) },
          stdio: ['pipe', 'ignore', 'pipe'],
          detached: true,
        });
        const kill = () => {
          try {
            if (child.pid) process.kill(-child.pid, 'SIGKILL');
          } catch {
            child.kill('SIGKILL');
          }
        };
        if (signal.aborted) kill();
        signal.addEventListener('abort', kill, { once: true });
        child.stdin?.on('error', () => undefined); // a command that does not read its input is fine
        child.stdin?.end(`${JSON.stringify(payload)}\n`);
        child.stderr?.on('data', (d: Buffer) => {
          stderr = (stderr + d.toString('utf8')).slice(-STDERR_TAIL_BYTES);
        });
        const fail = (how: string) => {
          const tail = stderr.trim();
          reject(new PgferryError('HOOK_FAILED', `command "${display}" ${how}${tail ? `: ${tail}` : ''}`));
        };
        child.on('error', (e) => {
          signal.removeEventListener('abort', kill);
          fail(`could not start (${e.message})`);
        });
        child.on('close', (code, sig) => {
          signal.removeEventListener('abort', kill);
          if (code === 0) resolve();
          else if (signal.aborted) fail('was stopped (timeout or server stop)');
          else fail(code === null ? `was killed by ${sig}` : `exited with ${code}`);
        });
      }),
  };
}
