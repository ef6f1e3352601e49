/**
 * Writes one consistent snapshot of one source's replica: a REPEATABLE READ transaction reads the applied
 * LSN and exports its snapshot; pg_dump (schema) and parallel COPY workers (data) import it, so schema,
 * data and sequences are all as of that one LSN. Unchanged tables are hard-linked from the previous
 * snapshot. Everything goes to `.<id>.partial/`, is fsynced, then renamed to `<id>/`.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Client } from 'pg';
import { isPgferryError, PgferryError } from '../../shared/errors';
import type { Logger } from '../../shared/log';
import {
  formatSnapshotId,
  MANIFEST_FILE,
  MANIFEST_FORMAT_VERSION,
  type ManifestTable,
  partialDirName,
  type SnapshotManifest,
} from '../../shared/snapshot/manifest';
import { readBufferSocket } from '../../shared/pg-read-buffer';
import { PGFERRY_VERSION } from '../../shared/version';
import { readReplicaState, type ReplicaState } from '../replica/metadata';
import type { SnapshotInfo } from './catalog';
import { fsyncAll, fsyncPath } from './durable-fs';
import { eachLimited } from './each-limited';
import { dumpSchema, findPgTool } from './pg-dump';
import { copyTables } from './parallel-copy';
import { listReplicaTables, lockTables, readSequences } from './replica-contents';
import { schemaFingerprint } from './schema-fingerprint';
import { linkBaseProblem, planTables, type TablePlan } from './table-plan';

export interface SnapshotWriterOptions {
  source: string;
  replicaUrl: string;
  /** the snapshots root (`snapshots.dir`) */
  dir: string;
  compressionLevel: number;
  parallelCopies: number;
  /** tables at least this big may be split (see splitTableMinBytes in parallel-copy.ts); Infinity: never */
  splitTableMinBytes: number;
  pgBinDir?: string;
  /** the newest complete snapshot of this source, the base for hard links */
  previous: SnapshotInfo | null;
  /** asks the agent for fresh sequence values (written to pgferry.sequences) before the snapshot starts */
  refreshSequences?: () => Promise<void>;
  sequenceRefreshTimeoutMs: number;
  logger: Logger;
  /** fault injection (tests): a pause before each table copy */
  tableCopyDelayMs?: number;
  /** called on the finished partial folder before it is published (renamed); a throw discards it */
  beforePublish?: (partial: SnapshotInfo, writtenFiles: string[]) => Promise<void>;
  now?: () => Date;
}

export interface WrittenSnapshot {
  info: SnapshotInfo;
  tablesWritten: number;
  tablesLinked: number;
  /** bytes of new files (linked files excluded) */
  bytesWritten: number;
  /** files written by this snapshot (not linked), '/' separated, relative to its folder */
  writtenFiles: string[];
  /** false when the agent could not be asked for fresh sequence values */
  sequencesFresh: boolean;
  /** milliseconds spent in each phase (for the debug log and tuning) */
  timingsMs: Record<string, number>;
}

/** every connection of a snapshot reads in one such transaction, all on the first one's exported snapshot */
const SNAPSHOT_TRANSACTION = 'BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY';

async function refreshSequencesWithin(opts: SnapshotWriterOptions): Promise<boolean> {
  if (!opts.refreshSequences) {
    opts.logger.info('no agent link to ask for fresh sequence values; using the latest known ones', {
      source: opts.source,
    });
    return false;
  }
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`no answer within ${opts.sequenceRefreshTimeoutMs / 1000} s`)),
      opts.sequenceRefreshTimeoutMs,
    );
  });
  try {
    await Promise.race([opts.refreshSequences(), timeout]);
    return true;
  } catch (e) {
    // a replica whose tables differ from the primary's must not become a snapshot: fail the run loudly
    if (isPgferryError(e, 'SCHEMA_MISMATCH')) throw e;
    opts.logger.warn('could not get fresh sequence values from the agent; using the latest known ones', {
      source: opts.source,
      error: (e as Error).message,
    });
    return false;
  } finally {
    clearTimeout(timer);
  }
}

async function connect(opts: SnapshotWriterOptions): Promise<Client> {
  const client = new Client({
    connectionString: opts.replicaUrl,
    application_name: 'pgferry-snapshot',
    // table files are read with CopyOut: one read buffer per connection instead of one per socket read
    stream: readBufferSocket,
  });
  client.on('error', (e) =>
    opts.logger.warn('snapshot connection error', { source: opts.source, error: e.message }),
  );
  try {
    await client.connect();
    await client.query('SET statement_timeout = 0; SET idle_in_transaction_session_timeout = 0');
  } catch (e) {
    await client.end().catch(() => undefined);
    throw new PgferryError(
      'REPLICA_UNAVAILABLE',
      `cannot connect to the replica database of source ${opts.source}: ${(e as Error).message}`,
      { cause: e },
    );
  }
  return client;
}

function checkState(state: ReplicaState | null, source: string): ReplicaState {
  if (!state) {
    throw new PgferryError('SNAPSHOT_FAILED', `the replica of source ${source} has no pgferry state yet`, {
      hint: 'wait until the agent has connected and the initial copy has finished, then try again',
    });
  }
  if (state.source !== source) {
    throw new PgferryError(
      'SNAPSHOT_FAILED',
      `the replica configured for source ${source} belongs to source ${state.source}`,
      { hint: `check sources[].replicaUrl of ${source} in the server config` },
    );
  }
  return state;
}

/** hard links made at once (each is a stat and a link, mostly waiting on the file system) */
const PARALLEL_LINKS = 16;

/** Hard-links unchanged tables; returns those that must be written after all (link base missing or damaged). */
async function linkUnchanged(
  plans: TablePlan[],
  previous: SnapshotInfo | null,
  partial: string,
  logger: Logger,
): Promise<{ linked: ManifestTable[]; toWrite: TablePlan[] }> {
  /** per plan, in plan order: its linked entry, or null when it must be written */
  const outcome: (ManifestTable | null)[] = plans.map(() => null);
  await eachLimited(plans, PARALLEL_LINKS, async (p, i) => {
    const prev = p.linkFrom;
    if (!prev || !previous) return;
    const from = path.join(previous.path, prev.file);
    try {
      const st = await fs.promises.lstat(from);
      if (!st.isFile() || st.size !== prev.bytes)
        throw new Error(`size ${st.size}, manifest says ${prev.bytes}`);
      await fs.promises.link(from, path.join(partial, p.file));
      outcome[i] = { ...prev, file: p.file, linked: true, columns: p.table.columns };
    } catch (e) {
      logger.warn('cannot link an unchanged table from the previous snapshot; writing it again', {
        table: `${p.table.schema}.${p.table.name}`,
        from,
        error: (e as Error).message,
      });
    }
  });
  const linked: ManifestTable[] = [];
  const toWrite: TablePlan[] = [];
  plans.forEach((p, i) => {
    const entry = outcome[i];
    if (entry) linked.push(entry);
    else toWrite.push(p);
  });
  return { linked, toWrite };
}

/** Hard-links the previous snapshot's schema files when the catalogs are unchanged since; null otherwise. */
async function linkSchema(
  previous: SnapshotInfo | null,
  fingerprint: string,
  partial: string,
): Promise<SnapshotManifest['schema'] | null> {
  if (!previous || previous.manifest.schemaFingerprint !== fingerprint) return null;
  const { pre, post } = previous.manifest.schema;
  try {
    for (const f of [pre, post]) {
      if ((await fs.promises.lstat(path.join(previous.path, f.file))).size !== f.bytes) return null;
    }
    for (const f of [pre, post])
      await fs.promises.link(path.join(previous.path, f.file), path.join(partial, f.file));
    return { pre, post };
  } catch {
    for (const f of [pre, post]) await fs.promises.rm(path.join(partial, f.file), { force: true });
    return null;
  }
}

function asSnapshotError(e: unknown, what: string): PgferryError {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return new PgferryError('DISK_FULL', `the snapshot volume ran full while writing ${what}`, { cause: e });
  }
  if (isPgferryError(e)) return e;
  return new PgferryError('SNAPSHOT_FAILED', `snapshot ${what} failed: ${(e as Error).message}`, {
    cause: e,
  });
}

export async function writeSnapshot(opts: SnapshotWriterOptions): Promise<WrittenSnapshot> {
  const now = opts.now ?? (() => new Date());
  const timingsMs: Record<string, number> = {};
  let phaseStart = performance.now();
  const phase = (name: string) => {
    const t = performance.now();
    timingsMs[name] = Math.round(t - phaseStart);
    phaseStart = t;
  };
  const sequencesFresh = await refreshSequencesWithin(opts);
  phase('refreshSequences');
  const startedAt = now();
  const id = formatSnapshotId(startedAt);
  const sourceDir = path.join(opts.dir, opts.source);
  const partial = path.join(sourceDir, partialDirName(id));
  const final = path.join(sourceDir, id);
  const what = `${opts.source}/${id}`;
  const clients: Client[] = [];
  /** background jobs writing into the partial folder: settled before it is removed */
  const jobs: Promise<unknown>[] = [];
  try {
    await fs.promises.mkdir(sourceDir, { recursive: true });
    await fs.promises.mkdir(partial);
  } catch (e) {
    throw asSnapshotError(e, what);
  }
  try {
    await fs.promises.mkdir(path.join(partial, 'data'));
    const main = await connect(opts);
    clients.push(main);
    await main.query(SNAPSHOT_TRANSACTION);
    const snapshotName = (await main.query<{ s: string }>('SELECT pg_export_snapshot() AS s')).rows[0].s;
    const state = checkState(await readReplicaState(main), opts.source);
    const settings = await main.query<{ v: string; b: string }>(
      `SELECT current_setting('server_version_num') AS v, current_setting('block_size') AS b`,
    );
    const pgMajor = Math.floor(Number(settings.rows[0].v) / 10000);
    const blockBytes = Number(settings.rows[0].b);
    const tables = await listReplicaTables(main);
    await lockTables(main, tables);
    const sequences = await readSequences(main);
    phase('open');
    const baseProblem = linkBaseProblem(opts.previous?.manifest ?? null, state);
    if (baseProblem && opts.previous)
      opts.logger.info(`full snapshot: ${baseProblem}`, { source: opts.source });
    // the schema fingerprint is read on this connection while the unchanged tables are linked
    let pgDump = '';
    let fingerprint = '';
    const mainReady = (async () => {
      pgDump = await findPgTool('pg_dump', pgMajor, opts.pgBinDir);
      fingerprint = await schemaFingerprint(main, `${PGFERRY_VERSION}\n${pgDump}`);
      return main;
    })();
    mainReady.catch(() => undefined); // a failure is thrown where it is awaited, below
    const plans = planTables(tables, baseProblem ? null : (opts.previous?.manifest ?? null));
    const { linked, toWrite } = await linkUnchanged(plans, opts.previous, partial, opts.logger);
    phase('link');

    // The copy starts at once on the other connections (each joins the exported snapshot as soon as it
    // is connected); this one first reads the schema fingerprint, then takes tables too. So one connection
    // more than there are tables: an incremental snapshot's one changed table is copied meanwhile.
    const workers = Math.max(1, Math.min(opts.parallelCopies, toWrite.length + 1));
    const joinSnapshot = async () => {
      const c = await connect(opts);
      clients.push(c);
      await c.query(SNAPSHOT_TRANSACTION);
      await c.query(`SET TRANSACTION SNAPSHOT '${snapshotName}'`);
      return c;
    };
    const helpers = Array.from({ length: workers - 1 }, joinSnapshot);
    const copyJob = copyTables({
      clients: [mainReady, ...helpers],
      plans: toWrite,
      dir: partial,
      compressionLevel: opts.compressionLevel,
      canSplit: pgMajor >= 14,
      splitTableMinBytes: opts.splitTableMinBytes,
      blockBytes,
      delayMs: opts.tableCopyDelayMs,
    });
    jobs.push(copyJob.catch(() => undefined));
    await mainReady;
    const linkedSchema = await linkSchema(baseProblem ? null : opts.previous, fingerprint, partial);
    const schemaJob = linkedSchema
      ? Promise.resolve(linkedSchema)
      : findPgTool('pg_restore', pgMajor, opts.pgBinDir).then(async (pgRestore) => {
          const files = await dumpSchema({
            pgDump,
            pgRestore,
            url: opts.replicaUrl,
            snapshotName,
            archive: path.join(partial, 'schema.archive'),
            preFile: path.join(partial, 'schema-pre.sql'),
            postFile: path.join(partial, 'schema-post.sql'),
          });
          return {
            pre: { file: 'schema-pre.sql', ...files.pre },
            post: { file: 'schema-post.sql', ...files.post },
          };
        });
    jobs.push(schemaJob.catch(() => undefined));
    const [schemaResult, copyResult] = await Promise.allSettled([schemaJob, copyJob]);
    if (copyResult.status === 'rejected') throw copyResult.reason;
    if (schemaResult.status === 'rejected') throw schemaResult.reason;
    const written = copyResult.value;
    const schema = await schemaJob;
    phase('schemaAndCopy');

    const schemaFiles = linkedSchema ? [] : [schema.pre, schema.post];
    const tablesOut = [...linked, ...written].sort((a, b) => (a.file < b.file ? -1 : 1));
    const manifest: SnapshotManifest = {
      formatVersion: MANIFEST_FORMAT_VERSION,
      id,
      pgferryVersion: PGFERRY_VERSION,
      pgMajor,
      source: opts.source,
      systemIdentifier: state.systemIdentifier,
      syncId: state.syncId,
      appVersion: state.appVersion,
      lsn: state.appliedLsn,
      startedAt: startedAt.toISOString(),
      finishedAt: now().toISOString(),
      schemaHash: state.schemaHash,
      schemaVerified: sequencesFresh,
      schemaFingerprint: fingerprint,
      schema,
      tables: tablesOut,
      sequences,
      totalBytes: schema.pre.bytes + schema.post.bytes + tablesOut.reduce((s, t) => s + t.bytes, 0),
    };
    const manifestText = `${JSON.stringify(manifest, null, 2)}\n`;
    const fh = await fs.promises.open(path.join(partial, MANIFEST_FILE), 'wx');
    try {
      await fh.writeFile(manifestText);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fsyncAll([...schemaFiles, ...written].map((f) => path.join(partial, f.file)));
    await fsyncPath(path.join(partial, 'data'));
    await fsyncPath(partial);
    phase('manifest');
    const writtenFiles = [...schemaFiles, ...written].map((f) => f.file);
    await opts.beforePublish?.({ source: opts.source, id, path: partial, manifest }, writtenFiles);
    phase('verify');
    await main.query('COMMIT');
    await fs.promises.rename(partial, final);
    await fsyncPath(sourceDir);
    phase('publish');
    return {
      info: { source: opts.source, id, path: final, manifest },
      tablesWritten: written.length,
      tablesLinked: linked.length,
      bytesWritten: [...schemaFiles, ...written].reduce((n, f) => n + f.bytes, manifestText.length),
      writtenFiles,
      sequencesFresh,
      timingsMs,
    };
  } catch (e) {
    await Promise.allSettled(jobs);
    await fs.promises.rm(partial, { recursive: true, force: true }).catch(() => undefined);
    throw asSnapshotError(e, what);
  } finally {
    await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
  }
}
