/**
 * The initial copy: a new slot with an exported snapshot, the schema from pg_dump at that snapshot,
 * every published table's rows as a COPY (binary) stream sent frame by frame under back-pressure
 * (never whole in memory), and the sequences. The exporting connection stays open until the copy is done.
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
import type { TableRef } from '../shared/protocol/messages';
import type { AgentConn } from './link';
import { connectPrimary, dropSlot, primaryClientConfig, readSequences } from './primary';
import { closeQuietly } from '../shared/pg-close';
import { qualified } from './recovery/ident';
import { CopyOut } from './copy-out';

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
}

export interface InitialCopyResult {
  consistentLsn: string;
  tables: number;
  bytes: number;
  seconds: number;
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
  let copier: Client | null = null;
  try {
    await dropSlot(admin, o.slot);
    await repl.connect();
    const created = await repl.query(
      `CREATE_REPLICATION_SLOT "${o.slot}" LOGICAL pgoutput (SNAPSHOT 'export')`,
    );
    const { consistent_point: consistentLsn, snapshot_name: snapshot } = created.rows[0] as {
      consistent_point: string;
      snapshot_name: string;
    };
    log.info('created replication slot for an initial copy', { slot: o.slot, consistentLsn });

    const [schemaPre, schemaPost] = await Promise.all([
      dumpSchema(pgDump, o.url, snapshot, 'pre-data'),
      dumpSchema(pgDump, o.url, snapshot, 'post-data'),
    ]);
    const syncId = `${new Date().toISOString()}-${randomUUID().slice(0, 8)}`;
    await conn.send({
      tag: 'syncBegin',
      syncId,
      systemIdentifier: o.systemIdentifier,
      consistentLsn,
      schemaPre,
    });

    copier = await connectPrimary(o.url, 'pgferry-agent-copy');
    await copier.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    await copier.query(`SET TRANSACTION SNAPSHOT '${snapshot}'`);
    const tables = await copier.query<TableRef>(
      `SELECT schemaname AS schema, tablename AS name FROM pg_publication_tables WHERE pubname = $1 AND schemaname <> 'pgferry' ORDER BY 1, 2`,
      [o.publication],
    );
    let bytes = 0;
    for (const t of tables.rows) {
      await conn.send({ tag: 'syncTable', table: t, format: 'binary' });
      const ident = qualified(t.schema, t.name);
      const stream = copier.query(new CopyOut(`COPY ${ident} TO STDOUT WITH (FORMAT binary)`, o.chunkBytes));
      for await (const chunk of stream) {
        await conn.send({ tag: 'copyData' }, chunk as Buffer);
        bytes += (chunk as Buffer).length;
      }
      await conn.send({ tag: 'syncTableEnd', table: t });
    }
    const sequences = await readSequences(copier);
    await copier.query('COMMIT');
    await conn.send({ tag: 'syncEnd', schemaPost, sequences });
    return { consistentLsn, tables: tables.rowCount ?? 0, bytes, seconds: (Date.now() - started) / 1000 };
  } finally {
    await closeQuietly(copier);
    await closeQuietly(repl);
    await closeQuietly(admin);
  }
}
