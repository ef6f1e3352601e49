import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import winston from 'winston';
import { LocalSource } from '../../agent/recovery/local-source';
import { recover } from '../../agent/recovery/recovery';
import {
  createDatabase,
  dropDatabase,
  query,
  sharedClusters,
  tableHash,
  uniqueName,
  userTables,
} from '../harness/db';
import { APP_SCHEMA_SQL, appDataSql, type Fixture, makeSnapshotFixture } from './fixtures';

const { primary, backup } = sharedClusters();
const sourceDb = uniqueName('rec_src');
const targetDb = uniqueName('rec_dst');
const role = uniqueName('rec_reader');
let root: string;
let work: string;
let fixture: Fixture;

beforeAll(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'pgferry-rec-root-'));
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'pgferry-rec-work-'));
  const url = await createDatabase(primary, sourceDb);
  await query(primary.url(), `CREATE ROLE ${role}`);
  await query(url, `${APP_SCHEMA_SQL} ${appDataSql(500)} GRANT SELECT ON app.orders TO ${role};`);
  fixture = await makeSnapshotFixture({ url, root, multiMemberGzip: true });
});

afterAll(async () => {
  await dropDatabase(primary, sourceDb);
  await dropDatabase(backup, targetDb);
  await query(primary.url(), `DROP ROLE IF EXISTS ${role}`);
  fs.rmSync(root, { recursive: true, force: true });
  fs.rmSync(work, { recursive: true, force: true });
});

describe('restore', () => {
  it('restores a snapshot into a new database on another cluster with identical contents, and every serial or identity column takes a new row', async () => {
    const target = backup.url(targetDb);
    const result = await recover({
      src: new LocalSource(root),
      latest: true,
      target,
      force: false,
      workDir: work,
      jobs: 2,
      splitMinBytes: 4096,
    });
    expect(result.created).toBe(true);
    expect(result.restore.tables).toBe(fixture.manifest.tables.length);
    expect(result.restore.rows).toBe(fixture.manifest.tables.reduce((n, t) => n + t.rows, 0));
    expect(result.restore.warnings.join('\n')).toContain(role);
    const src = primary.url(sourceDb);
    const tables = await userTables(src);
    expect(await userTables(target)).toEqual(tables);
    for (const t of tables)
      expect({ t, ...(await tableHash(target, t)) }).toEqual({ t, ...(await tableHash(src, t)) });

    // indexes, constraints, triggers and views came back
    const idx = await query<{ n: string }>(
      target,
      `SELECT count(*)::text AS n FROM pg_indexes WHERE schemaname IN ('app', 'public')`,
    );
    const srcIdx = await query<{ n: string }>(
      src,
      `SELECT count(*)::text AS n FROM pg_indexes WHERE schemaname IN ('app', 'public')`,
    );
    expect(idx[0].n).toBe(srcIdx[0].n);
    await expect(query(target, `INSERT INTO app.orders (customer_id) VALUES (999999)`)).rejects.toThrow(
      /foreign key/,
    );
    expect(await query(target, 'SELECT count(*) FROM app.customer_totals')).toHaveLength(1);

    // sequences at or above their columns' max: a new row inserts everywhere
    const inserted = await query<{ id: number }>(
      target,
      `INSERT INTO app.customers (name) VALUES ('after recovery') RETURNING id`,
    );
    expect(inserted[0].id).toBeGreaterThan(500);
    await query(target, `INSERT INTO app.orders (customer_id) VALUES (1)`);
    await query(target, `INSERT INTO public.events (kind) VALUES ('after')`);
    await query(target, `INSERT INTO public.measurements (d) VALUES ('2026-02-02')`);
    const t = await query<{ no: number }>(
      target,
      `INSERT INTO public.tickets (subject) VALUES ('next') RETURNING no`,
    );
    expect(t[0].no).toBeGreaterThan(5000);
    const note = await query<{ note: string }>(
      target,
      `SELECT note FROM app.customers WHERE name = 'after recovery'`,
    );
    expect(note[0].note).toBe('new');

    // the downloaded files are removed after a successful restore
    expect(fs.existsSync(result.download.dir)).toBe(false);
  });

  it('a restore interrupted midway stops with RESTORE_FAILED, and a rerun with --force replaces the partial target', async () => {
    const target = backup.url(targetDb);
    const stop = new AbortController();
    const logger = winston.createLogger({
      transports: [
        new winston.transports.Stream({
          stream: new Writable({
            objectMode: true,
            write(info: { message: string }, _enc, cb) {
              if (info.message.startsWith('loading')) stop.abort(new Error('operator pressed Ctrl-C'));
              cb();
            },
          }),
        }),
      ],
    });
    const interrupted = recover({
      src: new LocalSource(root),
      latest: true,
      target,
      force: true,
      workDir: work,
      logger,
      signal: stop.signal,
    });
    await expect(interrupted).rejects.toThrow('the restore was interrupted');
    const partial = await userTables(target);
    expect(partial.length).toBeGreaterThan(0);
    const again = await recover({
      src: new LocalSource(root),
      latest: true,
      target,
      force: true,
      workDir: work,
    });
    expect(again.replaced).toBe(true);
    expect(again.download.filesKept).toBe(fixture.manifest.tables.length + 2);
    for (const t of await userTables(primary.url(sourceDb)))
      expect(await tableHash(target, t)).toEqual(await tableHash(primary.url(sourceDb), t));
  });
});
