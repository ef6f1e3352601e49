/**
 * Benchmark: snapshots of a replica holding `pgbench -i -s <scale>` plus 46 small tables (50 in all).
 *  1. a full pgferry snapshot (the whole run: schema, parallel COPY, gzip, fsync, verify) against
 *     `pg_dump -Fd -j 2` of the same database, runs interleaved after one untimed warm-up of each; target:
 *     pgferry's time <= pg_dump's;
 *  2. an incremental snapshot after 1 of the 50 tables changed against a full one; target <= 0.1x.
 * Run alone: `node dist/test/bench/snapshot.js [scale] [runs]` (own cluster, default scale 10, 3 runs).
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { migrateMetadata } from '../../backup-server/replica/metadata';
import { SnapshotService } from '../../backup-server/snapshot/snapshot-service';
import { parseConfig } from '../../shared/config/load';
import { resolveServerConfig, serverConfigSchema } from '../../shared/config/server-config';
import { silentLogger } from '../../shared/log';
import { formatLsn, lsnFromBigInt } from '../../shared/lsn';
import { formatBytes } from '../../shared/units';
import { Cluster, PG_BIN_DIR } from '../harness/cluster';
import { createDatabase, dropDatabase, withClient } from '../harness/db';
import { type BenchRow, makeRow, median } from './row';

const run = promisify(execFile);
const EXTRA_TABLES = 46;
/** the table changed before each incremental snapshot: one of the small ones, as most changes are */
const CHANGED_TABLE = 'extra_07';

const lsnAt = (n: number) => formatLsn(lsnFromBigInt(0x1000000n + BigInt(n) * 0x100n));

async function timed<T>(fn: () => Promise<T>): Promise<[number, T]> {
  const t = process.hrtime.bigint();
  const r = await fn();
  return [Number(process.hrtime.bigint() - t) / 1e9, r];
}

function dirBytes(dir: string): number {
  let n = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) n += fs.statSync(path.join(e.parentPath, e.name)).size;
  }
  return n;
}

/** pgbench data plus 46 small tables, made to look like a replica of source "bench". */
export async function prepareReplica(cluster: Cluster, db: string, scale: number): Promise<string> {
  const url = await createDatabase(cluster, db);
  const pg = ['-h', '127.0.0.1', '-p', String(cluster.port), '-U', 'postgres'];
  await run(path.join(PG_BIN_DIR, 'pgbench'), ['-i', '-q', '-s', String(scale), ...pg, db], {
    timeout: 3_600_000,
  });
  await withClient(url, async (c) => {
    await migrateMetadata(c);
    for (let i = 0; i < EXTRA_TABLES; i++) {
      const t = `extra_${String(i).padStart(2, '0')}`;
      await c.query(
        `CREATE TABLE ${t} (id int PRIMARY KEY, val int NOT NULL, note text, at timestamptz DEFAULT now())`,
      );
      await c.query(
        `INSERT INTO ${t} (id, val, note) SELECT g, g * 7, md5(g::text) FROM generate_series(1, 2000) g`,
      );
    }
    await c.query(
      `INSERT INTO pgferry.state (source, system_identifier, sync_id, applied_lsn, app_version)
       VALUES ('bench', '7311111111111111111', 'sync-1', $1, 'bench')`,
      [lsnAt(0)],
    );
    await c.query(
      `INSERT INTO pgferry.table_changes SELECT schemaname, tablename, $1 FROM pg_tables
        WHERE schemaname NOT IN ('pg_catalog', 'information_schema', 'pgferry')`,
      [lsnAt(0)],
    );
    await c.query('VACUUM ANALYZE');
  });
  return url;
}

/** The applier's part: one table changed at LSN n. */
export async function changeOneTable(url: string, n: number): Promise<void> {
  await withClient(url, async (c) => {
    await c.query('BEGIN');
    await c.query(`UPDATE ${CHANGED_TABLE} SET val = val + 1 WHERE id = $1`, [n]);
    await c.query(`UPDATE pgferry.table_changes SET last_change_lsn = $1 WHERE table_name = $2`, [
      lsnAt(n),
      CHANGED_TABLE,
    ]);
    await c.query('UPDATE pgferry.state SET applied_lsn = $1', [lsnAt(n)]);
    await c.query('COMMIT');
  });
}

function service(url: string, dir: string, stateDir: string): SnapshotService {
  const raw = {
    stateDir,
    sources: [{ name: 'bench', passwordHash: 'bench', replicaUrl: url }],
    snapshots: { dir, minFreeBytes: 0, minFreePercent: 0 },
  };
  return new SnapshotService({
    config: resolveServerConfig(parseConfig(serverConfigSchema, raw)),
    logger: silentLogger(),
  });
}

/** per-run seconds, for the row's notes */
const seconds = (xs: number[]) => xs.map((x) => x.toFixed(2)).join('/');

export async function benchSnapshot(opts: {
  scale: number;
  runs: number;
  cluster: Cluster;
}): Promise<BenchRow[]> {
  const { cluster, scale, runs } = opts;
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'pgferry-bench-snapshot-'));
  const db = `bench_snapshot_${process.pid}`;
  try {
    const url = await prepareReplica(cluster, db, scale);
    const full: number[] = [];
    const dump: number[] = [];
    let snapshotBytes = 0;
    let dumpBytes = 0;
    // run 0 is an untimed warm-up of both (as the initial copy row has): a long-running server takes its
    // scheduled snapshots warm, and the first one in a process also finds pg_dump and compiles the code
    for (let i = 0; i <= runs; i++) {
      const dir = path.join(work, `full-${i}`);
      fs.mkdirSync(dir);
      const [t, outcome] = await timed(() =>
        service(url, dir, path.join(work, 'state')).createSnapshot('bench'),
      );
      if (outcome.record.status !== 'ok') throw new Error(`full snapshot failed: ${outcome.record.error}`);
      if (i > 0) full.push(t);
      snapshotBytes = outcome.record.totalBytes;
      fs.rmSync(dir, { recursive: true });
      const out = path.join(work, `dump-${i}`);
      const args = [
        '-Fd',
        '-j',
        '2',
        '-f',
        out,
        '-h',
        '127.0.0.1',
        '-p',
        String(cluster.port),
        '-U',
        'postgres',
        db,
      ];
      const [td] = await timed(() => run(path.join(PG_BIN_DIR, 'pg_dump'), args, { timeout: 3_600_000 }));
      if (i > 0) dump.push(td);
      dumpBytes = dirBytes(out);
      fs.rmSync(out, { recursive: true });
    }
    const incDir = path.join(work, 'incremental');
    fs.mkdirSync(incDir);
    const inc = service(url, incDir, path.join(work, 'state-inc'));
    const base = await inc.createSnapshot('bench');
    if (base.record.status !== 'ok') throw new Error(`base snapshot failed: ${base.record.error}`);
    const incremental: number[] = [];
    let written = 0;
    let writtenBytes = 0;
    for (let i = 0; i < runs; i++) {
      await changeOneTable(url, i + 1);
      const [t, outcome] = await timed(() => inc.createSnapshot('bench'));
      if (outcome.record.status !== 'ok')
        throw new Error(`incremental snapshot failed: ${outcome.record.error}`);
      incremental.push(t);
      written = outcome.record.tablesWritten;
      writtenBytes = outcome.record.writtenBytes;
    }
    const tables = base.record.tablesWritten + base.record.tablesLinked;
    return [
      makeRow({
        name: `full snapshot, pgbench -s ${scale} + ${EXTRA_TABLES} tables`,
        unit: 's',
        pgferry: median(full),
        peer: median(dump),
        peerName: 'pg_dump -Fd -j 2',
        target: 1,
        higherIsBetter: false,
        runs,
        notes: `${tables} tables; pgferry ${formatBytes(snapshotBytes)} (gzip 1, 2 copy connections, tables split on 4+ cores only, fsync, verified), pg_dump ${formatBytes(dumpBytes)}; s pgferry ${seconds(full)}, pg_dump ${seconds(dump)}`,
      }),
      makeRow({
        name: `incremental snapshot, 1 of ${tables} tables changed`,
        unit: 's',
        pgferry: median(incremental),
        peer: median(full),
        peerName: 'full pgferry snapshot',
        target: 10,
        higherIsBetter: false,
        runs,
        notes: `${written} table written (${CHANGED_TABLE}), ${formatBytes(writtenBytes)} new; s ${seconds(incremental)}; target 10 = at most 0.1x a full snapshot's time`,
      }),
    ];
  } finally {
    await dropDatabase(cluster, db).catch(() => undefined);
    fs.rmSync(work, { recursive: true, force: true });
  }
}

if (require.main === module) {
  const scale = Number(process.argv[2] ?? 10);
  const runs = Number(process.argv[3] ?? 3);
  (async () => {
    const cluster = await Cluster.create({ name: 'bench-snapshot' });
    try {
      process.stdout.write(`${JSON.stringify(await benchSnapshot({ scale, runs, cluster }), null, 2)}\n`);
    } finally {
      await cluster.destroy();
    }
  })().catch((e: unknown) => {
    process.stderr.write(`${String(e)}\n`);
    process.exitCode = 1;
  });
}
