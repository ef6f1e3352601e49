/**
 * Restoring a downloaded, verified snapshot folder into a prepared, empty database: pre-data schema, table
 * data over `jobs` parallel COPY streams, post-data (indexes and constraints in parallel, then the rest),
 * sequences, and each table's row count compared with the manifest.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Client } from 'pg';
import { PgferryError } from '../../shared/errors';
import type { Logger } from '../../shared/log';
import type { SnapshotManifest } from '../../shared/snapshot/manifest';
import { parseDumpScript, runScript, runScriptParallel } from './dump-script';
import { restoreSequences } from './sequences';
import { loadTables, type TableLoaded } from './table-loader';

export interface RestoreOptions {
  /** the target database (exists and is empty) */
  url: string;
  /** the snapshot's local folder */
  dir: string;
  manifest: SnapshotManifest;
  /** parallel COPY streams and index builds; default 2 */
  jobs?: number;
  logger?: Logger;
  /** for tests and the benchmark: spread tables of at least this many (compressed) bytes over all streams */
  splitMinBytes?: number;
  /** memory for index builds on each connection, e.g. '256MB' */
  maintenanceWorkMem?: string;
  /** aborting closes the connections: the restore stops with RESTORE_FAILED */
  signal?: AbortSignal;
}

export interface RestoreSummary {
  database: string;
  snapshot: string;
  source: string;
  tables: number;
  rows: number;
  /** bytes of the snapshot's files (compressed) */
  bytes: number;
  sequences: number;
  seconds: number;
  phases: { preData: number; data: number; postData: number; sequences: number };
  warnings: string[];
}

async function connect(url: string, settings: string[]): Promise<Client> {
  const c = new Client({ connectionString: url, application_name: 'pgferry-recover' });
  await c.connect();
  for (const s of settings) await c.query(s);
  return c;
}

export function checkRowCounts(m: SnapshotManifest, loaded: TableLoaded[]): void {
  const got = new Map(loaded.map((t) => [`${t.schema}.${t.name}`, t.rows]));
  const wrong = m.tables
    .filter((t) => got.get(`${t.schema}.${t.name}`) !== t.rows)
    .map(
      (t) =>
        `${t.schema}.${t.name}: ${got.get(`${t.schema}.${t.name}`) ?? 'not loaded'} rows, manifest ${t.rows}`,
    );
  if (wrong.length > 0) {
    throw new PgferryError('RESTORE_FAILED', `row counts differ from the manifest: ${wrong.join('; ')}`, {
      hint: 'the snapshot is inconsistent: restore another one (--list, then --snapshot ID --force)',
    });
  }
}

export async function restoreSnapshot(opts: RestoreOptions): Promise<RestoreSummary> {
  const { manifest: m, dir, logger } = opts;
  const jobs = Math.max(1, opts.jobs ?? 2);
  const started = Date.now();
  const lap = (() => {
    let t = Date.now();
    return () => {
      const now = Date.now();
      const s = (now - t) / 1000;
      t = now;
      return s;
    };
  })();
  const settings = [
    'SET synchronous_commit = off',
    `SET maintenance_work_mem = '${(opts.maintenanceWorkMem ?? '256MB').replace(/'/g, '')}'`,
  ];
  const clients: Client[] = [];
  try {
    for (let i = 0; i < jobs; i++) clients.push(await connect(opts.url, settings));
  } catch (e) {
    await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
    throw new PgferryError('TARGET_UNAVAILABLE', `cannot connect to the target: ${(e as Error).message}`, {
      cause: e,
    });
  }
  const onAbort = () => {
    for (const c of clients) c.end().catch(() => undefined);
  };
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    if (opts.signal?.aborted) throw opts.signal.reason;
    const read = (f: string) => fs.promises.readFile(path.join(dir, f), 'utf8');
    logger?.info('restoring the schema (pre-data)', { snapshot: m.id });
    const pre = await runScript(
      clients[0],
      parseDumpScript(await read(m.schema.pre.file)),
      'pre-data',
      logger,
    );
    const preData = lap();

    logger?.info(`loading ${m.tables.length} tables over ${jobs} connections`);
    const loaded = await loadTables({
      clients,
      tables: m.tables.map((t) => ({
        schema: t.schema,
        name: t.name,
        path: path.join(dir, t.file),
        bytes: t.bytes,
        columns: t.columns,
      })),
      splitMinBytes: opts.splitMinBytes,
      onTable: (t) => logger?.debug('table loaded', { table: `${t.schema}.${t.name}`, rows: t.rows }),
    });
    checkRowCounts(m, loaded);
    const data = lap();

    logger?.info('building indexes and constraints (post-data)');
    const post = await runScriptParallel(
      clients,
      parseDumpScript(await read(m.schema.post.file)),
      'post-data',
      logger,
    );
    const postData = lap();

    const seqs = await restoreSequences(clients[0], m.sequences);
    const sequences = lap();
    const rows = loaded.reduce((n, t) => n + t.rows, 0);
    const bytes = [m.schema.pre, m.schema.post, ...m.tables].reduce((n, f) => n + f.bytes, 0);
    return {
      database: clients[0].database ?? '',
      snapshot: m.id,
      source: m.source,
      tables: m.tables.length,
      rows,
      bytes,
      sequences: seqs.length,
      seconds: (Date.now() - started) / 1000,
      phases: { preData, data, postData, sequences },
      warnings: [...pre.warnings, ...post.warnings],
    };
  } catch (e) {
    if (!opts.signal?.aborted) throw e;
    throw new PgferryError('RESTORE_FAILED', 'the restore was interrupted', { cause: e });
  } finally {
    opts.signal?.removeEventListener('abort', onAbort);
    await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
  }
}
