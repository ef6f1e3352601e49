/**
 * Acceptance 3, 4, 5 of issue 5 over the real FTP server: a tampered snapshot, a non-empty target, an
 * application version mismatch; plus an unknown manifest format and a newer PostgreSQL major.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { SnapshotFtpServer } from '../../backup-server/ftp';
import { type RecoveryOptions, recover } from '../../agent/recovery/recovery';
import type { ErrorCode } from '../../shared/errors';
import { isPgferryError } from '../../shared/errors';
import {
  createDatabase,
  dropDatabase,
  query,
  sharedClusters,
  tableHash,
  uniqueName,
  userTables,
} from '../harness/db';
import { APP_SCHEMA_SQL, appDataSql, makeSnapshotFixture, tamperByte } from './fixtures';
import { ftpSource, startFtp } from './ftp-harness';

const { primary, backup } = sharedClusters();
const sourceDb = uniqueName('refuse_src');
const targets: string[] = [];
let root: string;
let server: SnapshotFtpServer;

beforeAll(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'pgferry-refuse-root-'));
  const url = await createDatabase(primary, sourceDb);
  await query(url, `${APP_SCHEMA_SQL} ${appDataSql(300)}`);
  await makeSnapshotFixture({ url, root, source: 'good', appVersion: '5.2.1', catalog: false });
  const t = await makeSnapshotFixture({ url, root, source: 'tampered' });
  const biggest = [...t.manifest.tables].sort((a, b) => b.bytes - a.bytes)[0];
  tamperByte(path.join(t.dir, biggest.file));
  await makeSnapshotFixture({ url, root, source: 'future', formatVersion: 2 });
  await makeSnapshotFixture({ url, root, source: 'newer-pg', pgMajor: 99 });
  server = await startFtp(root);
});

afterAll(async () => {
  await server?.stop();
  await dropDatabase(primary, sourceDb);
  for (const t of targets) await dropDatabase(backup, t);
  fs.rmSync(root, { recursive: true, force: true });
});

function target(): { name: string; url: string } {
  const name = uniqueName('refuse_dst');
  targets.push(name);
  return { name, url: backup.url(name) };
}

async function run(over: Partial<RecoveryOptions> & { target: string }) {
  const src = ftpSource(server);
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgferry-refuse-work-'));
  try {
    return await recover({ src, latest: true, force: false, workDir, jobs: 2, ...over });
  } finally {
    await src.close();
    fs.rmSync(workDir, { recursive: true, force: true });
  }
}

async function refusal(p: Promise<unknown>, code: ErrorCode): Promise<Error> {
  try {
    await p;
  } catch (e) {
    if (isPgferryError(e, code)) return e;
    throw e;
  }
  throw new Error(`expected ${code}, the recovery succeeded`);
}

async function databaseExists(name: string): Promise<boolean> {
  return (await query(backup.url(), 'SELECT 1 FROM pg_database WHERE datname = $1', [name])).length === 1;
}

test('a snapshot with one tampered byte is refused before any table is touched, and the target stays empty', async () => {
  const t = target();
  await createDatabase(backup, t.name);
  const e = await refusal(run({ source: 'tampered', target: t.url }), 'SNAPSHOT_CORRUPT');
  expect(e.message).toMatch(
    /tampered\/\d{8}T\d{9}Z\/tables\/.* does not match the manifest: .* sha256 [0-9a-f]{64}, expected/,
  );
  expect(await userTables(t.url)).toEqual([]);
});

test('a tampered snapshot leaves even a non-empty target untouched when --force is given', async () => {
  const t = target();
  const url = await createDatabase(backup, t.name);
  await query(url, `CREATE TABLE keep_me (v text); INSERT INTO keep_me VALUES ('precious')`);
  await refusal(run({ source: 'tampered', target: t.url, force: true }), 'SNAPSHOT_CORRUPT');
  expect(await query(url, 'SELECT v FROM keep_me')).toEqual([{ v: 'precious' }]);
});

test('a non-empty target is refused without --force and replaced with it', async () => {
  const t = target();
  const url = await createDatabase(backup, t.name);
  await query(url, `CREATE TABLE old_stuff (v text); INSERT INTO old_stuff VALUES ('old')`);
  const e = await refusal(run({ source: 'good', target: t.url }), 'RECOVERY_REFUSED');
  expect(e.message).toContain(
    `the target database "${t.name}" is not empty: it has 1 user table (public.old_stuff)`,
  );
  expect((e as { hint?: string }).hint).toMatch(/--force/);
  expect(await userTables(url)).toEqual(['public.old_stuff']);

  const r = await run({ source: 'good', target: t.url, force: true });
  expect(r.replaced).toBe(true);
  const src = primary.url(sourceDb);
  const tables = await userTables(src);
  expect(await userTables(url)).toEqual(tables);
  for (const name of tables) expect(await tableHash(url, name)).toEqual(await tableHash(src, name));
});

test('an --app-version mismatch is refused naming both versions, before anything is downloaded or created', async () => {
  const t = target();
  const e = await refusal(run({ source: 'good', target: t.url, appVersion: '6.0.0' }), 'RECOVERY_REFUSED');
  expect(e.message).toMatch(
    /was made for application version "5\.2\.1", but this installation is application version "6\.0\.0"/,
  );
  expect(await databaseExists(t.name)).toBe(false);
});

test('an unknown manifest format and a snapshot from a newer PostgreSQL major are refused, saying what to do', async () => {
  const t = target();
  const format = await refusal(run({ source: 'future', target: t.url }), 'RECOVERY_REFUSED');
  expect(format.message).toMatch(/has manifest format 2; pgferry .* reads format 1 only/);
  const major = await refusal(run({ source: 'newer-pg', target: t.url }), 'RECOVERY_REFUSED');
  expect(major.message).toMatch(/comes from PostgreSQL 99, but the target server runs PostgreSQL 15/);
  expect((major as { hint?: string }).hint).toMatch(/PostgreSQL 99 \(or newer\)/);
  expect(await databaseExists(t.name)).toBe(false);
});
