/**
 * Acceptance 1–3 of the snapshot issue: a snapshot taken while the applier writes restores to exactly the
 * replica at the manifest's LSN; verify catches one changed byte and names the file; a second snapshot
 * rewrites only the changed table and hard-links the others.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Client } from 'pg';
import { parseLsn } from '../../shared/lsn';
import type { SnapshotManifest } from '../../shared/snapshot/manifest';
import { silentLogger } from '../../shared/log';
import { SnapshotService } from '../../backup-server/snapshot/snapshot-service';
import {
  createDatabase,
  dropDatabase,
  sharedClusters,
  tableHash,
  uniqueName,
  userTables,
  waitFor,
  withClient,
} from '../harness/db';
import {
  applyChange,
  capturingLogger,
  cli,
  lsnAt,
  makeConfig,
  makeReplica,
  restoreSnapshot,
  type TestReplica,
  tempDir,
  writeConfigFile,
} from './fixture';

const ACCOUNTS = 5;
const SCHEMA_SQL = [
  ...Array.from(
    { length: ACCOUNTS },
    (_, i) =>
      `CREATE TABLE acct_${i} (id int PRIMARY KEY, balance bigint NOT NULL, note text);
       INSERT INTO acct_${i} SELECT g, 1000, NULL FROM generate_series(1, 200) g;`,
  ),
  `CREATE TABLE events (id bigserial PRIMARY KEY, k int NOT NULL, payload text); CREATE INDEX events_k ON events (k);`,
  // big enough to be copied in page ranges over both connections (splitTableMinBytes: 0 below)
  `CREATE TABLE notes (id int PRIMARY KEY, body text NOT NULL);
   INSERT INTO notes SELECT g, repeat(md5(g::text), 4) FROM generate_series(1, 20000) g;`,
].join('\n');

/** The applier's n-th transaction (deterministic, so the state at any LSN can be rebuilt by replay). */
function step(n: number): { sql: string; tables: string[] } {
  const a = n % ACCOUNTS;
  const b = (n + 2) % ACCOUNTS;
  let sql = `UPDATE acct_${a} SET balance = balance + ${n}, note = 'n${n}' WHERE id = ${((n * 37) % 200) + 1};
    UPDATE acct_${b} SET balance = balance - ${n} WHERE id = ${((n * 11) % 200) + 1};
    INSERT INTO events (k, payload) VALUES (${n}, md5('${n}'));
    UPDATE notes SET body = 'n${n}' WHERE id = ${((n * 7919) % 20000) + 1};`;
  if (n % 7 === 0) sql += `DELETE FROM events WHERE k = ${n - 5};`;
  return { sql, tables: [`acct_${a}`, `acct_${b}`, 'events', 'notes'] };
}

function appliedTransaction(n: number): string {
  const { sql, tables } = step(n);
  const changes = tables
    .map(
      (t) => `INSERT INTO pgferry.table_changes VALUES ('public', '${t}', '${lsnAt(n)}')
        ON CONFLICT (schema_name, table_name) DO UPDATE SET last_change_lsn = excluded.last_change_lsn;`,
    )
    .join('\n');
  return `BEGIN; ${sql} ${changes}
    INSERT INTO pgferry.sequences (schema_name, sequence_name, last_value, is_called)
      VALUES ('public', 'events_id_seq', currval('public.events_id_seq'), true)
      ON CONFLICT (schema_name, sequence_name) DO UPDATE SET last_value = excluded.last_value;
    UPDATE pgferry.state SET applied_lsn = '${lsnAt(n)}'; COMMIT;`;
}

function stepOfLsn(lsn: string): number {
  return Number((parseLsn(lsn) - parseLsn(lsnAt(0))) / 0x100n);
}

/** A concurrent writer acting as the applier until stopped; `applied` is the last committed step. */
function startWriter(c: Client): { applied: () => number; stop: () => Promise<void> } {
  let n = 0;
  let stopping = false;
  const loop = (async () => {
    while (!stopping) {
      await c.query(appliedTransaction(n + 1));
      n++;
    }
  })();
  return {
    applied: () => n,
    stop: async () => {
      stopping = true;
      await loop;
    },
  };
}

describe('snapshot consistency, verification and incremental linking', () => {
  const { backup } = sharedClusters();
  const dir = tempDir('snaps');
  const stateDir = tempDir('state');
  let consist: TestReplica;
  let incr: TestReplica;
  const dbs: string[] = [];

  beforeAll(async () => {
    consist = await makeReplica('consist', { setup: (c) => c.query(SCHEMA_SQL).then(() => undefined) });
    incr = await makeReplica('incr', { tables: 22, rows: 200 });
  });

  afterAll(async () => {
    await Promise.all([consist?.drop(), incr?.drop(), ...dbs.map((d) => dropDatabase(backup, d))]);
    fs.rmSync(dir, { recursive: true, force: true });
    fs.rmSync(stateDir, { recursive: true, force: true });
  });

  const config = (snapshots: Record<string, unknown> = {}) =>
    makeConfig({
      dir,
      stateDir,
      sources: [
        { name: 'consist', url: consist.url },
        { name: 'incr', url: incr.url },
      ],
      snapshots: { faultInjection: { tableCopyDelayMs: 40 }, splitTableMinBytes: 0, ...snapshots },
    });

  it('a snapshot taken while the applier writes restores to exactly the replica at the manifest LSN', async () => {
    const service = new SnapshotService({ config: config(), logger: silentLogger() });
    const { outcome, before, after } = await withClient(consist.url, async (c) => {
      const w = startWriter(c);
      try {
        await waitFor('the applier to commit 20 transactions', () => w.applied() >= 20);
        const before = w.applied();
        const outcome = await service.createSnapshot('consist');
        return { outcome, before, after: w.applied() };
      } finally {
        await w.stop();
      }
    });
    expect(outcome.record.error).toBeNull();
    expect(outcome.record.status).toBe('ok');
    const snap = outcome.snapshot!;
    const k = stepOfLsn(snap.manifest.lsn);
    expect(after - before).toBeGreaterThan(5); // the applier really wrote during the snapshot
    expect(k).toBeGreaterThanOrEqual(before);
    expect(k).toBeLessThanOrEqual(after);

    // the notes table was copied in two page ranges, appended as two gzip members
    const notes = snap.manifest.tables.find((t) => t.name === 'notes')!;
    const gz = fs.readFileSync(path.join(snap.path, notes.file));
    expect(gz.indexOf(Buffer.from([0x1f, 0x8b, 0x08]), 10)).toBeGreaterThan(0);
    expect(notes.rows).toBe(20000);

    const restored = uniqueName('restored');
    const expected = uniqueName('expected');
    dbs.push(restored, expected);
    const restoredUrl = await createDatabase(backup, restored);
    const expectedUrl = await createDatabase(backup, expected);
    await restoreSnapshot(snap.path, snap.manifest, restoredUrl);
    await withClient(expectedUrl, async (c) => {
      await c.query(SCHEMA_SQL);
      for (let n = 1; n <= k; n += 100) {
        const batch = Array.from({ length: Math.min(100, k - n + 1) }, (_, i) => step(n + i).sql).join('\n');
        await c.query(`BEGIN; ${batch} COMMIT;`);
      }
    });
    const tables = await userTables(expectedUrl);
    expect(await userTables(restoredUrl)).toEqual(tables);
    for (const t of tables) expect(await tableHash(restoredUrl, t)).toEqual(await tableHash(expectedUrl, t));
    const pgferrySchema = await withClient(restoredUrl, (c) =>
      c.query(`SELECT 1 FROM pg_namespace WHERE nspname = 'pgferry'`),
    );
    expect(pgferrySchema.rowCount).toBe(0);
    // the restored sequence is at least past every restored row: new rows can be inserted at once
    await withClient(restoredUrl, (c) => c.query(`INSERT INTO events (k) VALUES (-1)`));
    expect(snap.manifest.tables.map((t) => t.rows).reduce((a, b) => a + b, 0)).toBeGreaterThan(
      ACCOUNTS * 200,
    );
  });

  it('snapshot verify passes on a fresh snapshot and fails naming the file after one byte changes', async () => {
    const service = new SnapshotService({ config: config(), logger: silentLogger() });
    const { snapshot } = await service.createSnapshot('consist');
    const configFile = writeConfigFile(path.join(stateDir, 'server.yaml'), {
      dir,
      stateDir,
      sources: [{ name: 'consist', url: consist.url }],
    });
    const good = await cli(['snapshot', 'verify', '--config', configFile, snapshot!.id]);
    expect(good.stderr).toBe('');
    expect(good.code).toBe(0);
    expect(good.stdout).toMatch(/^ok: consist\/\d{8}T\d{9}Z: 9 files match their SHA-256/);

    const file = path.join(snapshot!.path, 'data', 'public.acct_3.copy.gz');
    const fd = fs.openSync(file, 'r+');
    const at = Math.floor(fs.fstatSync(fd).size / 2);
    const byte = Buffer.alloc(1);
    fs.readSync(fd, byte, 0, 1, at);
    byte[0] ^= 0x01;
    fs.writeSync(fd, byte, 0, 1, at);
    fs.closeSync(fd);

    const bad = await cli(['snapshot', 'verify', '--config', configFile, `consist/${snapshot!.id}`]);
    expect(bad.code).toBe(65);
    expect(bad.stderr).toContain('data/public.acct_3.copy.gz: SHA-256 mismatch');
    const r = await service.verify(snapshot!.id, 'consist');
    expect(r.problems).toEqual([
      { file: 'data/public.acct_3.copy.gz', problem: expect.stringContaining('SHA-256 mismatch') },
    ]);
  });

  it('a second snapshot after one of 22 tables changed writes only that file and hard-links the others', async () => {
    const service = new SnapshotService({ config: config(), logger: silentLogger() });
    const first = await service.createSnapshot('incr');
    expect(first.record).toMatchObject({ status: 'ok', tablesWritten: 22, tablesLinked: 0 });
    await applyChange(incr.url, 1, ['t07'], 'UPDATE t07 SET val = val + 1 WHERE id = 5');
    const second = await service.createSnapshot('incr');
    expect(second.record).toMatchObject({ status: 'ok', tablesWritten: 1, tablesLinked: 21 });

    const a = first.snapshot!;
    const b = second.snapshot!;
    for (const t of b.manifest.tables) {
      const inodeA = fs.statSync(path.join(a.path, t.file)).ino;
      const inodeB = fs.statSync(path.join(b.path, t.file)).ino;
      if (t.name === 't07') {
        expect(t.linked).toBe(false);
        expect(inodeB).not.toBe(inodeA);
      } else {
        expect(t.linked).toBe(true);
        expect(inodeB).toBe(inodeA);
      }
    }
    expect(b.manifest.lsn).toBe(lsnAt(1));
    expect((await service.verify(b.id, 'incr')).ok).toBe(true);
    const history = (await service.history()).filter((r) => r.source === 'incr');
    expect(history.slice(0, 2).map((r) => [r.tablesWritten, r.tablesLinked])).toEqual([
      [1, 21],
      [22, 0],
    ]);
    expect(history[0].writtenBytes).toBeLessThan(history[1].writtenBytes / 2);
  });

  it('reuses the schema files while the catalogs are unchanged and dumps them again after DDL', async () => {
    const service = new SnapshotService({ config: config(), logger: silentLogger() });
    const inode = (s: { path: string }, f: string) => fs.statSync(path.join(s.path, f)).ino;
    const a = (await service.createSnapshot('incr')).snapshot!;
    const b = (await service.createSnapshot('incr')).snapshot!;
    expect(inode(b, 'schema-pre.sql')).toBe(inode(a, 'schema-pre.sql'));
    expect(inode(b, 'schema-post.sql')).toBe(inode(a, 'schema-post.sql'));
    expect(b.manifest.schemaFingerprint).toBe(a.manifest.schemaFingerprint);

    await applyChange(incr.url, 2, ['t03'], 'ALTER TABLE t03 ADD COLUMN extra int DEFAULT 7');
    await withClient(incr.url, (c) => c.query('CREATE INDEX t05_val ON t05 (val)'));
    const out = await service.createSnapshot('incr');
    const c = out.snapshot!;
    expect(inode(c, 'schema-pre.sql')).not.toBe(inode(b, 'schema-pre.sql'));
    expect(fs.readFileSync(path.join(c.path, 'schema-pre.sql'), 'utf8')).toContain('extra integer DEFAULT 7');
    expect(fs.readFileSync(path.join(c.path, 'schema-post.sql'), 'utf8')).toContain('CREATE INDEX t05_val');
    expect(c.manifest.tables.find((t) => t.name === 't03')).toMatchObject({
      linked: false,
      columns: ['id', 'val', 'txt', 'extra'],
    });
    expect(out.record.tablesWritten).toBe(1);
  });

  it('asks the agent for fresh sequence values first and uses the latest known when it does not answer', async () => {
    const t01 = (m: SnapshotManifest) => m.sequences.find((q) => q.name === 't01_id_seq');
    const asked: string[] = [];
    const fresh = new SnapshotService({
      config: config(),
      logger: silentLogger(),
      refreshSequences: async (source) => {
        asked.push(source);
        await withClient(incr.url, (c) =>
          c.query(`INSERT INTO pgferry.sequences (schema_name, sequence_name, last_value, is_called)
                   VALUES ('public', 't01_id_seq', 5000, true) ON CONFLICT (schema_name, sequence_name)
                   DO UPDATE SET last_value = excluded.last_value`),
        );
      },
    });
    const a = await fresh.createSnapshot('incr');
    expect(asked).toEqual(['incr']);
    expect(t01(a.snapshot!.manifest)).toEqual({
      schema: 'public',
      name: 't01_id_seq',
      value: '5000',
      isCalled: true,
    });
    expect(a.record.warnings).toEqual([]);

    const { logger, entries: log } = capturingLogger();
    const away = new SnapshotService({
      config: config({ sequenceRefreshTimeoutSeconds: 0.2 }),
      logger,
      refreshSequences: () => new Promise<void>(() => undefined),
    });
    const b = await away.createSnapshot('incr');
    expect(b.record.status).toBe('ok');
    expect(b.record.warnings).toEqual(['sequence values are the latest known, not fresh from the agent']);
    expect(log).toContainEqual(
      expect.objectContaining({
        message: 'could not get fresh sequence values from the agent; using the latest known ones',
        error: 'no answer within 0.2 s',
      }),
    );
    expect(t01(b.snapshot!.manifest)?.value).toBe('5000');
  });
});
