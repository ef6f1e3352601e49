/** `pgferry recover` as the operator runs it: flags, password sources, --list, --json, exit codes. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PassThrough } from 'node:stream';
import { Command } from 'commander';
import type { SnapshotFtpServer } from '../../backup-server/ftp';
import { type RecoverFlags, type RecoverIo, recoverCommandWith, runRecover } from '../../agent/cli/recover';
import { exitCodeOf, isPgferryError } from '../../shared/errors';
import { silentLogger } from '../../shared/log';
import { createDatabase, dropDatabase, query, sharedClusters, tableHash, uniqueName } from '../harness/db';
import { type Fixture, makeSnapshotFixture } from './fixtures';
import { PASSWORD, startFtp } from './ftp-harness';

const { primary, backup } = sharedClusters();
const sourceDb = uniqueName('cli_src');
const targetDb = uniqueName('cli_dst');
let root: string;
let work: string;
let server: SnapshotFtpServer;
let older: Fixture;
let newer: Fixture;

beforeAll(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'pgferry-cli-root-'));
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'pgferry-cli-work-'));
  const url = await createDatabase(primary, sourceDb);
  await query(
    url,
    `CREATE TABLE items (id serial PRIMARY KEY, v text); INSERT INTO items (v) SELECT 'v' || g FROM generate_series(1, 50) g`,
  );
  older = await makeSnapshotFixture({
    url,
    root,
    finishedAt: new Date('2026-11-20T03:00:00Z'),
    appVersion: '5.2.0',
  });
  await query(url, `INSERT INTO items (v) SELECT 'w' || g FROM generate_series(1, 50) g`);
  newer = await makeSnapshotFixture({
    url,
    root,
    finishedAt: new Date('2026-11-21T03:00:00Z'),
    appVersion: '5.2.1',
  });
  server = await startFtp(root);
});

afterAll(async () => {
  await server?.stop();
  await dropDatabase(primary, sourceDb);
  await dropDatabase(backup, targetDb);
  fs.rmSync(root, { recursive: true, force: true });
  fs.rmSync(work, { recursive: true, force: true });
});

function io(env: NodeJS.ProcessEnv = { PGFERRY_FTP_PASSWORD: PASSWORD }): RecoverIo & { out: () => string } {
  const stdout = new PassThrough();
  const chunks: Buffer[] = [];
  stdout.on('data', (c: Buffer) => chunks.push(c));
  const stdin = new PassThrough() as PassThrough & { isTTY?: boolean };
  return {
    stdin,
    stdout,
    stderr: new PassThrough().resume(),
    env,
    logger: silentLogger(),
    out: () => Buffer.concat(chunks).toString('utf8'),
  };
}

function flags(over: Partial<RecoverFlags>): RecoverFlags {
  return { host: '127.0.0.1', port: server.port ?? 0, user: 'backup', jobs: 2, workDir: work, ...over };
}

test('--list prints the snapshots newest first as a table, and as JSON with --json', async () => {
  const a = io();
  await runRecover(flags({ list: true }), a);
  const lines = a.out().trim().split('\n');
  expect(lines[0]).toMatch(/^#\s+ID\s+SOURCE\s+FINISHED AT \(UTC\)\s+LSN\s+SIZE\s+APP VERSION\s+PG$/);
  expect(lines[1]).toContain(newer.manifest.id);
  expect(lines[1]).toContain('5.2.1');
  expect(lines[2]).toContain(older.manifest.id);

  const b = io();
  await runRecover(flags({ list: true, json: true }), b);
  const parsed = JSON.parse(b.out()) as { id: string; appVersion: string; pgMajor: number }[];
  expect(parsed.map((e) => e.id)).toEqual([newer.manifest.id, older.manifest.id]);
  expect(parsed[0]).toMatchObject({ appVersion: '5.2.1', pgMajor: 15, source: 'monitoring' });
});

test('--snapshot ID --json restores that snapshot and prints a machine-readable summary', async () => {
  const a = io();
  await runRecover(flags({ snapshot: older.manifest.id, target: backup.url(targetDb), json: true }), a);
  const r = JSON.parse(a.out()) as { snapshot: { id: string }; restore: { tables: number; rows: number } };
  expect(r.snapshot.id).toBe(older.manifest.id);
  expect(r.restore).toMatchObject({ tables: 1, rows: 50 });
  expect(await tableHash(backup.url(targetDb), 'public.items')).toEqual({
    count: 50,
    md5: expect.any(String),
  });
});

test('--latest --force --app-version replaces the target and prints a readable summary', async () => {
  const a = io();
  await runRecover(
    flags({ latest: true, target: backup.url(targetDb), force: true, appVersion: '5.2.1' }),
    a,
  );
  expect(a.out()).toMatch(
    /restored snapshot monitoring\/\d{8}T\d{9}Z .* into database "cli_dst_.*" \(replaced\)/,
  );
  expect(a.out()).toMatch(/tables: 1, rows: 100, sequences: 1/);
  expect(await tableHash(backup.url(targetDb), 'public.items')).toEqual(
    await tableHash(primary.url(sourceDb), 'public.items'),
  );
});

test('without a password, a choice or a target on a non-terminal it refuses with usage errors and their exit codes', async () => {
  const noPassword = runRecover(flags({ list: true }), io({}));
  await expect(noPassword).rejects.toThrow(/no FTP password given/);
  await noPassword.catch((e) => expect(exitCodeOf(e)).toBe(78));
  const noChoice = runRecover(flags({ target: backup.url(targetDb) }), io());
  await expect(noChoice).rejects.toThrow(/no snapshot chosen and no terminal to ask on/);
  await noChoice.catch((e) => expect(exitCodeOf(e)).toBe(64));
  await expect(runRecover(flags({ latest: true }), io())).rejects.toThrow(/no --target database given/);
  await expect(
    runRecover(flags({ latest: true, snapshot: 'x', target: 'postgres:///x' }), io()),
  ).rejects.toThrow(/--latest and --snapshot exclude each other/);
});

test('the password file is read, and a wrong password exits with FTP_AUTH_FAILED', async () => {
  const file = path.join(work, 'pw');
  fs.writeFileSync(file, 'wrong password\n');
  const e = await runRecover(flags({ list: true, passwordFile: file }), io({})).catch((x: unknown) => x);
  expect(isPgferryError(e, 'FTP_AUTH_FAILED')).toBe(true);
  expect(exitCodeOf(e)).toBe(77);
});

test('the command parses its flags strictly: ports and jobs are numbers, unknown flags are refused', async () => {
  const parse = (args: string[]) => {
    const program = new Command('pgferry').exitOverride().configureOutput({ writeErr: () => undefined });
    recoverCommandWith(io())(program);
    return program.parseAsync(['recover', ...args], { from: 'user' });
  };
  await expect(parse(['--host', 'h', '--port', 'ftp', '--list'])).rejects.toThrow(
    /--port must be a whole number/,
  );
  await expect(parse(['--host', 'h', '--jobs', '0', '--list'])).rejects.toThrow(
    /--jobs must be a whole number/,
  );
  await expect(parse(['--host', 'h', '--password', 'x', '--list'])).rejects.toThrow(
    /unknown option '--password'/,
  );
});
