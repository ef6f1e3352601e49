/** Logs: JSON lines to a size-rotated file or a stream, human lines on a TTY, never a secret. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PassThrough } from 'node:stream';
import { createLogger } from '../../shared/log';
import { waitFor } from '../harness/db';
import { tempDir } from '../support/pgferry';

function capture(isTTY: boolean): { stream: PassThrough & { isTTY?: boolean }; text: () => string } {
  const stream: PassThrough & { isTTY?: boolean } = new PassThrough();
  stream.isTTY = isTTY;
  let text = '';
  stream.on('data', (d: Buffer) => {
    text += d.toString();
  });
  return { stream, text: () => text };
}

it('writes JSON lines to a file rotated by size, keeping at most maxFiles, losing no line of a burst', async () => {
  const dir = tempDir('log');
  const file = path.join(dir, 'server.log');
  const log = createLogger({
    format: 'json',
    file,
    maxFileBytes: 4096,
    maxFiles: 3,
    defaultMeta: { role: 'server' },
  });
  for (let i = 0; i < 300; i++) log.info('source monitoring is LIVE', { source: 'monitoring', i });
  const finished = new Promise((r) => log.on('finish', r));
  log.end();
  await finished;
  expect(fs.readdirSync(dir).sort()).toEqual(['server.log', 'server.log.1', 'server.log.2']);
  const seen: number[] = [];
  for (const f of ['server.log.2', 'server.log.1', 'server.log']) {
    expect(fs.statSync(path.join(dir, f)).size).toBeLessThanOrEqual(4096);
    for (const line of fs.readFileSync(path.join(dir, f), 'utf8').split('\n').filter(Boolean)) {
      const e = JSON.parse(line) as Record<string, unknown>;
      expect(e).toMatchObject({ level: 'info', message: 'source monitoring is LIVE', role: 'server' });
      expect(e.timestamp).toMatch(/^\d{4}-\d\d-\d\dT/);
      seen.push(Number(e.i));
    }
  }
  // the three files hold the newest lines, in order, none missing
  expect(seen.at(-1)).toBe(299);
  expect(seen).toEqual(seen.map((_, k) => seen[0] + k));
});

it('never rotates what is not a regular file', async () => {
  const log = createLogger({ format: 'json', file: '/dev/null', maxFileBytes: 10, maxFiles: 2 });
  for (let i = 0; i < 20; i++) log.info('into the void');
  const finished = new Promise((r) => log.on('finish', r));
  log.end();
  await finished;
  expect(fs.existsSync('/dev/null.1')).toBe(false);
});

it('writes human lines on a TTY and JSON lines otherwise (systemd)', async () => {
  const tty = capture(true);
  const pipe = capture(false);
  createLogger({ format: 'auto', stream: tty.stream }).warn('source monitoring is DEAD', {
    source: 'monitoring',
  });
  createLogger({ format: 'auto', stream: pipe.stream }).warn('source monitoring is DEAD', {
    source: 'monitoring',
  });
  createLogger({ format: 'human', stream: pipe.stream }).info('plain', { n: 1 });
  await waitFor('lines', () => tty.text().includes('\n') && pipe.text().split('\n').length >= 3);
  expect(tty.text().replace(new RegExp(`${String.fromCharCode(27)}\\[\\d+m`, 'g'), '')).toMatch(
    /^\d{4}-\d\d-\d\dT\S+ warn {2}source monitoring is DEAD source=monitoring\n$/,
  );
  const [json, human] = pipe.text().trim().split('\n');
  expect(JSON.parse(json)).toMatchObject({
    level: 'warn',
    message: 'source monitoring is DEAD',
    source: 'monitoring',
  });
  expect(human).toMatch(/^\S+ info {2}plain n=1$/);
});

it('never writes a secret: password fields and URL passwords are redacted', async () => {
  const out = capture(false);
  const log = createLogger({ format: 'json', stream: out.stream });
  log.info('connecting to postgres://app:s3cret@db.example/monitoring', {
    password: 's3cret',
    server: { passwordFile: '/etc/x', token: 'abc' },
    passwordHash: 'scram-sha-256$kept',
  });
  await waitFor('a line', () => out.text().includes('\n'));
  expect(out.text()).not.toContain('s3cret');
  expect(out.text()).not.toContain('abc');
  expect(JSON.parse(out.text())).toMatchObject({
    message: 'connecting to postgres://app:[redacted]@db.example/monitoring',
    password: '[redacted]',
    server: { passwordFile: '[redacted]', token: '[redacted]' },
    passwordHash: 'scram-sha-256$kept',
  });
});
