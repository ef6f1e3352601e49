/**
 * The initial copy: a new slot with an exported snapshot, the schema from pg_dump at that snapshot,
 * every published table's rows as a COPY (binary) stream sent frame by frame under back-pressure
 * (never whole in memory), and the sequences. The exporting connection stays open until the copy is done.
 * With a protocol-2 server the tables go on several streams at once, each read by its own connection on
 * the same snapshot; a big table is split into page ranges across them (copy-plan.ts).
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomUUID } from 'node:crypto';
import { promisify } from 'node:util';
import { Client, type ClientConfig } from 'pg';
import { PgferryError } from '../shared/errors';
import { sqlFromPgDump } from '../shared/pg-dump-script';
import { withoutCaptureTrigger } from './ddl-capture';
import type { Logger } from '../shared/log';
import { COPY_STREAMS_MAX, COPY_STREAMS_VERSION } from '../shared/protocol/messages';
import type { AgentConn } from './link';
import { connectPrimary, dropSlot, primaryClientConfig, readSequences } from './primary';
import { closeQuietly } from '../shared/pg-close';
import { CopyOut } from '../shared/pg-copy-out';
import { quoteIdent } from '../shared/sql-ident';
import { copyJobSql, planCopy, type TableInfo } from './copy-plan';

const run = promisify(execFile);

export function findPgDump(pgMajor: number, binDir?: string): string {
  const candidates = [
    ...(binDir ? [path.join(binDir, 'pg_dump')] : []),
    `/usr/lib/postgresql/${pgMajor}/bin/pg_dump`,
    ...(process.env.PATH ?? '').split(path.delimiter).map((d) => path.join(d, 'pg_dump')),
  ];
  const found = candidates.find((p) => fs.existsSync(p));
  if (!found) {
    throw new PgferryError('CONFIG_INVALID', `pg_dump for PostgreSQL ${pgMajor} not found`, {
      hint: 'install the PostgreSQL client binaries or set initialSync.pgBinDir',
    });
  }
  return found;
}

async function dumpSchema(
  pgDump: string,
  url: string,
  snapshot: string,
  section: 'pre-data' | 'post-data',
): Promise<string> {
  const { stdout } = await run(
    pgDump,
    [
      '--schema-only',
      `--section=${section}`,
      `--snapshot=${snapshot}`,
      '--no-owner',
      '--no-privileges',
      '--no-publications',
      '--no-subscriptions',
      '--exclude-schema=pgferry',
      `--dbname=${url}`,
    ],
    { maxBuffer: 256 * 1024 * 1024 },
  );
  return withoutCaptureTrigger(sqlFromPgDump(stdout));
}

export interface InitialCopyOptions {
  url: string;
  slot: string;
  publication: string;
  systemIdentifier: string;
  pgMajor: number;
  pgBinDir?: string;
  chunkBytes: number;
  /** connections copying at once when the server speaks protocol 2 (default 2) */
  streams?: number;
  /**
   * a table at least this big is copied in page ranges on every stream at once; default: never. It pays
   * when the backup side has cores to spare: on one 2-core machine running everything it did not (it
   * costs CPU on both clusters and the split table loses COPY FREEZE)
   */
  splitTableMinBytes?: number;
}

export const DEFAULT_COPY_STREAMS = 2;
/** bytes left before each COPY data chunk for its frame head ({"tag":"copyData","stream":N} and the prefix) */
const FRAME_HEAD_ROOM = 64;

export interface InitialCopyResult {
  consistentLsn: string;
  tables: number;
  bytes: number;
  seconds: number;
}

/** The published tables with their sizes and copied columns, read under the copy's snapshot. */
async function publishedTables(c: Client, publication: string, pgMajor: number): Promise<TableInfo[]> {
  const generated = pgMajor >= 12 ? "AND a.attgenerated = ''" : '';
  const r = await c.query<{ schema: string; name: string; bytes: string; pages: string; columns: string[] }>(
    `SELECT t.schemaname AS schema, t.tablename AS name, pg_relation_size(c.oid) AS bytes,
            pg_relation_size(c.oid) / current_setting('block_size')::int AS pages,
            ARRAY(SELECT a.attname::text FROM pg_attribute a
                   WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped ${generated}
                   ORDER BY a.attnum) AS columns
       FROM pg_publication_tables t
       JOIN pg_namespace n ON n.nspname = t.schemaname
       JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = t.tablename
      WHERE t.pubname = $1 AND t.schemaname <> 'pgferry'
      ORDER BY 1, 2`,
    [publication],
  );
  return r.rows.map((t) => ({ ...t, bytes: Number(t.bytes), pages: Number(t.pages) }));
}

/** A connection in a read-only transaction on the exported snapshot. */
async function snapshotReader(url: string, snapshot: string): Promise<Client> {
  const c = await connectPrimary(url, 'pgferry-agent-copy', { copyReader: true });
  try {
    await c.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    await c.query(`SET TRANSACTION SNAPSHOT '${snapshot}'`);
    return c;
  } catch (e) {
    await closeQuietly(c);
    throw e;
  }
}

export async function runInitialCopy(
  conn: AgentConn,
  o: InitialCopyOptions,
  log: Logger,
): Promise<InitialCopyResult> {
  const started = Date.now();
  const pgDump = findPgDump(o.pgMajor, o.pgBinDir);
  const admin = await connectPrimary(o.url, 'pgferry-agent-sync');
  const replConfig: ClientConfig & { replication: 'database' } = {
    ...primaryClientConfig(o.url, 'pgferry-agent-slot'),
    replication: 'database',
  };
  const repl = new Client(replConfig);
  repl.on('error', () => undefined); // failures surface on the next query
  const copiers: Client[] = [];
  try {
    await dropSlot(admin, o.slot);
    await repl.connect();
    const created = await repl.query(
      `CREATE_REPLICATION_SLOT ${quoteIdent(o.slot)} LOGICAL pgoutput (SNAPSHOT 'export')`,
    );
    const { consistent_point: consistentLsn, snapshot_name: snapshot } = created.rows[0] as {
      consistent_point: string;
      snapshot_name: string;
    };
    log.info('created replication slot for an initial copy', { slot: o.slot, consistentLsn });

    // the server needs the pre-data part to start; the post-data part only at the end
    const schemaPost = dumpSchema(pgDump, o.url, snapshot, 'post-data');
    schemaPost.catch(() => undefined); // awaited below; a failure there fails the copy
    const schemaPre = await dumpSchema(pgDump, o.url, snapshot, 'pre-data');
    const syncId = `${new Date().toISOString()}-${randomUUID().slice(0, 8)}`;
    await conn.send({
      tag: 'syncBegin',
      syncId,
      systemIdentifier: o.systemIdentifier,
      consistentLsn,
      schemaPre,
    });

    // several streams only with a server that applies them apart (protocol 2)
    const streams =
      conn.protocolVersion >= COPY_STREAMS_VERSION
        ? Math.max(1, Math.min(o.streams ?? DEFAULT_COPY_STREAMS, COPY_STREAMS_MAX))
        : 1;
    copiers.push(await snapshotReader(o.url, snapshot));
    const tables = await publishedTables(copiers[0], o.publication, o.pgMajor);
    const jobs = planCopy(tables, {
      streams,
      splitTableMinBytes: o.splitTableMinBytes ?? Number.POSITIVE_INFINITY,
      pgMajor: o.pgMajor,
    });
    const used = Math.min(streams, jobs.length);
    while (copiers.length < used) copiers.push(await snapshotReader(o.url, snapshot));
    let bytes = 0;
    let failed = false;
    const copyOn = async (stream: number, copier: Client) => {
      for (let job = jobs.shift(); job && !failed; job = jobs.shift()) {
        const { table, parts } = job;
        await conn.send({
          tag: 'syncTable',
          table,
          format: 'binary',
          stream,
          ...(parts > 1 ? { parts } : {}),
        });
        const out = copier.query(new CopyOut(copyJobSql(job), o.chunkBytes, FRAME_HEAD_ROOM));
        for await (const chunk of out) {
          const frame = chunk as Buffer;
          // the frame head goes into the room CopyOut left before the data: the data is not copied again
          await conn.sendInPlace({ tag: 'copyData', stream }, frame, FRAME_HEAD_ROOM);
          bytes += frame.length - FRAME_HEAD_ROOM;
        }
        await conn.send({ tag: 'syncTableEnd', table, stream, rows: out.rowCount });
      }
    };
    await Promise.all(
      copiers.map((c, i) =>
        copyOn(i, c).catch((e: unknown) => {
          failed = true;
          throw e;
        }),
      ),
    );
    const sequences = await readSequences(copiers[0]);
    for (const c of copiers) await c.query('COMMIT');
    await conn.send({ tag: 'syncEnd', schemaPost: await schemaPost, sequences });
    return { consistentLsn, tables: tables.length, bytes, seconds: (Date.now() - started) / 1000 };
  } finally {
    await Promise.all(copiers.map((c) => closeQuietly(c)));
    await closeQuietly(repl);
    await closeQuietly(admin);
  }
}
