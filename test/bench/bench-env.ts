/**
 * The benchmark's own pair of PostgreSQL clusters (primary and replica, the native baseline's settings:
 * durable commits, 256 MB shared buffers, 4 GB max WAL) and the small SQL and pg tool helpers every row uses.
 */
import { execFile, spawn } from 'node:child_process';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { Client } from 'pg';
import { sqlFromPgDump } from '../../shared/pg-dump-script';
import { Cluster, PG_BIN_DIR } from '../harness/cluster';

const run = promisify(execFile);

/** Settings of /work/shared/bench/pg-cluster.sh, where the native figures were measured. */
export const BASELINE_SETTINGS: Record<string, string | number> = {
  max_replication_slots: 10,
  max_wal_senders: 10,
  fsync: 'on',
  synchronous_commit: 'on',
  full_page_writes: 'on',
  shared_buffers: "'256MB'",
  max_wal_size: "'4GB'",
  checkpoint_timeout: "'15min'",
  wal_sender_timeout: "'60s'",
};

export interface BenchClusters {
  primary: Cluster;
  replica: Cluster;
}

export async function createBenchClusters(opts: { statements: boolean }): Promise<BenchClusters> {
  const primary = await Cluster.create({ name: 'bench-primary', settings: BASELINE_SETTINGS });
  try {
    const replica = await Cluster.create({
      name: 'bench-replica',
      settings: opts.statements
        ? { ...BASELINE_SETTINGS, shared_preload_libraries: "'pg_stat_statements'" }
        : BASELINE_SETTINGS,
    });
    return { primary, replica };
  } catch (e) {
    await primary.destroy();
    throw e;
  }
}

/** monotonic milliseconds, for durations */
export const now = (): number => performance.now();
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A connection that stays open for a whole row (markers, polls, checks). */
export async function connect(url: string, appName = 'pgferry-bench'): Promise<Client> {
  const c = new Client({ connectionString: url, application_name: appName });
  await c.connect();
  c.on('error', () => undefined);
  return c;
}

export async function sql(
  url: string,
  text: string,
  params: unknown[] = [],
): Promise<Record<string, unknown>[]> {
  const c = await connect(url);
  try {
    return (await c.query(text, params)).rows as Record<string, unknown>[];
  } finally {
    await c.end();
  }
}

/** First column of the first row, as text ('' when there is no row). */
export async function value(url: string, text: string, params: unknown[] = []): Promise<string> {
  const rows = await sql(url, text, params);
  const first = rows[0];
  return first === undefined ? '' : String(Object.values(first)[0] ?? '');
}

export async function freshDatabase(cluster: Cluster, db: string): Promise<string> {
  await sql(cluster.url(), `DROP DATABASE IF EXISTS "${db}" WITH (FORCE)`);
  await sql(cluster.url(), `CREATE DATABASE "${db}"`);
  return cluster.url(db);
}

export async function dropDatabase(cluster: Cluster, db: string): Promise<void> {
  await sql(cluster.url(), `DROP DATABASE IF EXISTS "${db}" WITH (FORCE)`);
}

export async function dropInactiveSlots(cluster: Cluster, db: string): Promise<void> {
  await sql(
    cluster.url(),
    'SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = $1 AND NOT active',
    [db],
  );
}

export async function checkpoint(...clusters: Cluster[]): Promise<void> {
  for (const c of clusters) await sql(c.url(), 'CHECKPOINT');
}

const pgArgs = (c: Cluster): string[] => ['-h', '127.0.0.1', '-p', String(c.port), '-U', 'postgres'];
const bin = (name: string): string => path.join(PG_BIN_DIR, name);

export async function pgbenchInit(cluster: Cluster, db: string, scale: number): Promise<void> {
  await run(bin('pgbench'), ['-i', '-q', '-s', String(scale), ...pgArgs(cluster), db], {
    timeout: 3_600_000,
  });
}

/** `pgbench -n -c <clients> -j <threads> -T <seconds>` (TPC-B-like); resolves with the transactions processed. */
export async function pgbenchRun(
  cluster: Cluster,
  db: string,
  opts: { clients: number; threads: number; seconds: number },
): Promise<number> {
  const args = ['-n', '-c', String(opts.clients), '-j', String(opts.threads), '-T', String(opts.seconds)];
  const { stdout } = await run(bin('pgbench'), [...args, ...pgArgs(cluster), db], {
    timeout: (opts.seconds + 600) * 1000,
  });
  const m = /number of transactions actually processed: (\d+)/.exec(stdout);
  if (!m) throw new Error(`pgbench printed no transaction count: ${stdout.slice(-400)}`);
  return Number(m[1]);
}

/** Schema only (tables, keys, indexes), as the native subscription needs it before CREATE SUBSCRIPTION. */
export async function copySchema(from: Cluster, fromDb: string, to: Cluster, toDb: string): Promise<void> {
  const { stdout } = await run(
    bin('pg_dump'),
    ['--schema-only', '--no-publications', '--no-subscriptions', ...pgArgs(from), fromDb],
    { maxBuffer: 64 * 1024 * 1024 },
  );
  const c = await connect(to.url(toDb));
  try {
    await c.query(sqlFromPgDump(stdout));
  } finally {
    await c.end();
  }
}

/** `pg_dump -Fc | pg_restore` as one stream, the way the native baseline measured it. */
export async function dumpPipe(from: Cluster, fromDb: string, to: Cluster, toDb: string): Promise<void> {
  const dump = spawn(bin('pg_dump'), ['-Fc', ...pgArgs(from), fromDb], { stdio: ['ignore', 'pipe', 'pipe'] });
  const restore = spawn(bin('pg_restore'), [...pgArgs(to), '-d', toDb], {
    stdio: ['pipe', 'ignore', 'pipe'],
  });
  dump.stdout.pipe(restore.stdin);
  const done = (p: typeof dump | typeof restore, what: string) =>
    new Promise<void>((resolve, reject) => {
      let err = '';
      p.stderr?.on('data', (d: Buffer) => {
        err += d.toString();
      });
      p.on('error', reject);
      p.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${what} exited ${code}: ${err}`))));
    });
  await Promise.all([done(dump, 'pg_dump'), done(restore, 'pg_restore')]);
}

/** Exact row counts of every user table, e.g. "pgbench_accounts=5000000 ...", for equality checks. */
export async function rowCounts(url: string, tables: string[]): Promise<string> {
  const parts: string[] = [];
  for (const t of tables) parts.push(`${t}=${await value(url, `SELECT count(*) FROM ${t}`)}`);
  return parts.join(' ');
}

export async function userTables(url: string): Promise<string[]> {
  const rows = await sql(
    url,
    `SELECT format('%I.%I', schemaname, relname) AS t FROM pg_stat_user_tables
      WHERE schemaname NOT IN ('pgferry') ORDER BY 1`,
  );
  return rows.map((r) => String(r.t));
}

export async function pgVersion(): Promise<string> {
  const { stdout } = await run(bin('postgres'), ['--version']);
  return stdout.trim();
}

/** Polls `check` every `intervalMs` until it is true; fails after `timeoutMs` naming `what`. */
export async function until(
  what: string,
  check: () => Promise<boolean>,
  timeoutMs: number,
  intervalMs = 100,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
    await sleep(intervalMs);
  }
}

/**
 * The logical replication launcher starts at most one apply worker per wal_retrieve_retry_interval (5 s):
 * a subscription created soon after the previous one was created or dropped would wait for it. Waiting
 * here keeps that artificial delay out of the native figures, as the baseline script does.
 */
export const nativeSubscriptionGate = {
  last: 0,
  mark(): void {
    this.last = Date.now();
  },
  async wait(): Promise<void> {
    const w = this.last + 6000 - Date.now();
    if (w > 0) await sleep(w);
    this.mark();
  },
};

/**
 * Waits until every table of the native subscription `name` in `url` is ready ('r'); fails at once when a
 * table sync worker reported an error (it would otherwise retry forever).
 */
export async function nativeSyncDone(url: string, name: string, timeoutMs: number): Promise<void> {
  await until(
    `subscription ${name} to copy every table`,
    async () => {
      const errors = await value(
        url,
        'SELECT sync_error_count + apply_error_count FROM pg_stat_subscription_stats WHERE subname = $1',
        [name],
      );
      if (errors !== '' && errors !== '0')
        throw new Error(`subscription ${name} failed (see the replica's log): ${errors} worker errors`);
      return (
        (await value(url, `SELECT count(*) FILTER (WHERE srsubstate <> 'r') FROM pg_subscription_rel`)) ===
        '0'
      );
    },
    timeoutMs,
  );
}

/**
 * Removes what the pgferry agent installs on a source (publication, DDL capture event trigger and its
 * schema), so the peers copy the same pristine database pgferry started from.
 */
export async function removeAgentObjects(url: string): Promise<void> {
  await sql(
    url,
    'DROP EVENT TRIGGER IF EXISTS pgferry_ddl; DROP SCHEMA IF EXISTS pgferry CASCADE; DROP PUBLICATION IF EXISTS pgferry',
  );
}
