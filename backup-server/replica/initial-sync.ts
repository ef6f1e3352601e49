/**
 * Receives an initial copy into a fresh database `<db>__sync`: pre-data schema, each table's COPY stream
 * (streamed straight into COPY FROM, never held whole in memory), post-data schema, sequences, and the
 * state row marking the copy complete at the slot's consistent point. Then the copy replaces the old replica.
 *
 * Tables may arrive on several streams at once (protocol 2), each applied on its own connection. A table
 * that arrives whole is truncated and loaded in one transaction with COPY FREEZE (rows frozen and pages
 * all-visible: the index builds and later reads set no hint bits); one split over several streams is
 * loaded by all of them at once, without FREEZE. The index and key builds of post-data then run on
 * several connections with a generous maintenance_work_mem (see post-data.ts).
 */
import type { Client } from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { PgferryError } from '../../shared/errors';
import { formatLsn, type Lsn, parseLsn } from '../../shared/lsn';
import { COPY_STREAMS_MAX, type SequenceValue, type TableRef } from '../../shared/protocol/messages';
import type { Logger } from '../../shared/log';
import { replicaUrlFor } from '../../shared/config/server-config';
import { Applier } from './applier';
import {
  connectReplica,
  recreateDatabase,
  swapInSyncedDatabase,
  syncDatabaseName,
  withAdmin,
} from './database';
import { holdCopyHeap } from './copy-heap';
import { migrateMetadata } from './metadata';
import { type IndexBuild, planPostData } from './post-data';
import { qualifiedName, quoteLiteral } from './sql';
import { closeQuietly } from '../../shared/pg-close';

export interface SyncTarget {
  source: string;
  adminUrl: string;
  database: string;
}

export interface InitialSyncOptions {
  /** connections running the index and key builds of post-data at once */
  indexBuildConnections: number;
  /** maintenance_work_mem of those sessions, in bytes */
  maintenanceWorkMemBytes: number;
}

export const DEFAULT_SYNC_OPTIONS: InitialSyncOptions = {
  indexBuildConnections: 2,
  maintenanceWorkMemBytes: 512 * 1024 * 1024,
};

/** parts one table may be split into */
const MAX_PARTS = 1024;
/** COPY data a stream may hold before the link waits for its replica connection (others go on meanwhile) */
const STREAM_BUFFER_BYTES = 1024 * 1024;

type CopyIn = ReturnType<typeof copyFrom>;

/** One stream of the copy: a connection and the table (part) it is loading. */
interface Stream {
  client: Client;
  copy: CopyIn | null;
  copyDone: Promise<void> | null;
  table: TableRef | null;
  /** loaded with COPY FREEZE inside a transaction that truncated the table first */
  inTransaction: boolean;
}

const tableKey = (t: TableRef): string => qualifiedName(t.schema, t.name);

export class InitialSync {
  private readonly streams = new Map<number, Stream>();
  /** tables that arrive in parts: how many, and how many started and ended so far */
  private readonly split = new Map<string, { parts: number; started: number; ended: number }>();
  private extraClients: Client[] = [];
  private consistentLsn: Lsn = 0n as Lsn;
  private syncId = '';
  private systemIdentifier = '';
  private syncUrl = '';
  private releaseHeap: () => void = () => undefined;
  readonly startedAt = Date.now();
  bytes = 0;
  tables = 0;
  /** tables loaded whole with COPY FREEZE */
  private frozenTables = 0;

  constructor(
    private readonly target: SyncTarget,
    private readonly log: Logger,
    private readonly options: InitialSyncOptions = DEFAULT_SYNC_OPTIONS,
  ) {}

  async begin(m: {
    syncId: string;
    systemIdentifier: string;
    consistentLsn: string;
    schemaPre: string;
  }): Promise<void> {
    this.releaseHeap = holdCopyHeap();
    this.syncId = m.syncId;
    this.systemIdentifier = m.systemIdentifier;
    this.consistentLsn = parseLsn(m.consistentLsn);
    const name = syncDatabaseName(this.target.database);
    await withAdmin(this.target.adminUrl, (admin) => recreateDatabase(admin, name));
    this.syncUrl = replicaUrlFor(this.target.adminUrl, name);
    const client = await connectReplica(this.syncUrl, 'pgferry-sync');
    this.streams.set(0, { client, copy: null, copyDone: null, table: null, inTransaction: false });
    await client.query(m.schemaPre);
    await client.query('RESET search_path');
    await migrateMetadata(client);
    this.log.info('initial copy started', {
      source: this.target.source,
      database: name,
      consistentLsn: m.consistentLsn,
      syncId: m.syncId,
    });
  }

  async startTable(table: TableRef, format: 'binary' | 'text', streamId = 0, parts = 1): Promise<void> {
    const s = await this.stream(streamId);
    if (s.copy) {
      throw new PgferryError(
        'PROTOCOL_ERROR',
        `stream ${streamId} starts ${tableKey(table)} while ${s.table ? tableKey(s.table) : 'a table'} is still copying`,
      );
    }
    const ident = tableKey(table);
    if (!Number.isInteger(parts) || parts < 1 || parts > MAX_PARTS)
      throw new PgferryError('PROTOCOL_ERROR', `${ident}: ${parts} parts is out of range (1-${MAX_PARTS})`);
    const whole = parts === 1;
    if (!whole) {
      const sp = this.split.get(ident) ?? { parts, started: 0, ended: 0 };
      if (sp.parts !== parts || sp.started === parts)
        throw new PgferryError('PROTOCOL_ERROR', `${ident}: more parts than the ${sp.parts} announced`);
      sp.started++;
      this.split.set(ident, sp);
    } else {
      // ONLY: an inheritance child is a table of its own, maybe copied on another stream
      await s.client.query(`BEGIN; TRUNCATE ONLY ${ident}`);
      s.inTransaction = true;
    }
    const copy = s.client.query(
      copyFrom(`COPY ${ident} FROM STDIN WITH (FORMAT ${format}${whole ? ', FREEZE' : ''})`, {
        highWaterMark: STREAM_BUFFER_BYTES,
      }),
    );
    s.copy = copy;
    s.table = table;
    s.copyDone = new Promise<void>((resolve, reject) => {
      copy.on('finish', () => resolve());
      copy.on('error', reject);
    });
    s.copyDone.catch(() => undefined);
  }

  /** COPY data, in the pieces its frame arrived in */
  async data(parts: Buffer[], streamId = 0): Promise<void> {
    const copy = this.streams.get(streamId)?.copy;
    if (!copy) throw new PgferryError('PROTOCOL_ERROR', `copy data outside of a table on stream ${streamId}`);
    let room = true;
    for (const part of parts) {
      this.bytes += part.length;
      room = copy.write(part);
    }
    if (!room) {
      await new Promise<void>((resolve, reject) => {
        const done = () => {
          copy.off('error', fail);
          resolve();
        };
        const fail = (e: Error) => {
          copy.off('drain', done);
          reject(e);
        };
        copy.once('drain', done);
        copy.once('error', fail);
      });
    }
  }

  async endTable(streamId = 0, rows?: number): Promise<void> {
    const s = this.streams.get(streamId);
    if (!s?.copy || !s.copyDone || !s.table)
      throw new PgferryError('PROTOCOL_ERROR', `end of a table that was not started on stream ${streamId}`);
    s.copy.end();
    await s.copyDone;
    const ident = tableKey(s.table);
    if (rows !== undefined && s.copy.rowCount !== rows) {
      throw new PgferryError(
        'PROTOCOL_ERROR',
        `${ident}: the replica took ${s.copy.rowCount} rows, the primary sent ${rows}`,
        { hint: 'the copy is abandoned; the agent makes a new one when it reconnects' },
      );
    }
    if (s.inTransaction) {
      await s.client.query('COMMIT');
      this.frozenTables++;
    }
    const sp = this.split.get(ident);
    if (sp) sp.ended++;
    if (!sp || sp.ended === sp.parts) {
      this.tables++;
      this.split.delete(ident);
    }
    s.copy = null;
    s.copyDone = null;
    s.table = null;
    s.inTransaction = false;
  }

  /** Finishes the copy, swaps it into place, and returns an Applier-ready applied LSN. */
  async finish(schemaPost: string, sequences: SequenceValue[]): Promise<Lsn> {
    const c = this.stream0();
    const busy = [...this.streams.values()].find((s) => s.copy);
    if (busy?.table) throw new PgferryError('PROTOCOL_ERROR', `${tableKey(busy.table)} was not finished`);
    if (this.split.size > 0) {
      throw new PgferryError('PROTOCOL_ERROR', `parts of ${[...this.split.keys()].join(', ')} never arrived`);
    }
    const dataDoneAt = Date.now();
    await this.postData(schemaPost);
    await c.query('RESET search_path');
    const postDataDoneAt = Date.now();
    const lsn = formatLsn(this.consistentLsn);
    await c.query('BEGIN');
    await c.query(
      `INSERT INTO pgferry.state (id, source, system_identifier, sync_id, sync_completed_at, applied_lsn, applied_at)
       VALUES (1, $1, $2, $3, now(), $4, now())`,
      [this.target.source, this.systemIdentifier, this.syncId, lsn],
    );
    await c.query(
      `INSERT INTO pgferry.table_changes (schema_name, table_name, last_change_lsn)
       SELECT schemaname, tablename, ${quoteLiteral(lsn)} FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema', 'pgferry')`,
    );
    const applier = new Applier(
      c,
      this.consistentLsn,
      { maxGroupTransactions: 1, maxGroupDelayMs: 0 },
      () => undefined,
    );
    await applier.applySequences(sequences, this.consistentLsn);
    await c.query('COMMIT');
    const streams = this.streams.size;
    await this.closeAll();
    this.releaseHeap();
    const swapAt = Date.now();
    await swapInSyncedDatabase(this.target.adminUrl, this.target.database);
    this.log.info('initial copy complete', {
      source: this.target.source,
      database: this.target.database,
      tables: this.tables,
      frozenTables: this.frozenTables,
      bytes: this.bytes,
      streams,
      dataSeconds: (dataDoneAt - this.startedAt) / 1000,
      postDataSeconds: (postDataDoneAt - dataDoneAt) / 1000,
      swapSeconds: (Date.now() - swapAt) / 1000,
      seconds: (Date.now() - this.startedAt) / 1000,
    });
    return this.consistentLsn;
  }

  /**
   * The index and key builds on `indexBuildConnections` connections at once, biggest table first and
   * two builds on one table not at once; then the rest of the script on the first connection. A build
   * that fails (a lock deadlock, an order pg_dump needed after all) runs again in its place in the rest,
   * so the outcome is never worse than the whole script in one go.
   */
  private async postData(script: string): Promise<void> {
    const plan = planPostData(script);
    const main = this.stream0();
    const clients = [...this.streams.values()].map((s) => s.client);
    const wanted = Math.min(this.options.indexBuildConnections, plan.builds.length);
    while (clients.length < wanted) {
      const extra = await connectReplica(this.syncUrl, 'pgferry-sync');
      this.extraClients.push(extra);
      clients.push(extra);
    }
    const memKb = Math.max(1024, Math.floor(this.options.maintenanceWorkMemBytes / 1024));
    await Promise.all(clients.map((c) => c.query(`SET maintenance_work_mem = '${memKb}kB'`)));
    const failed: IndexBuild[] = [];
    if (plan.builds.length > 0) {
      const sizes = await tableSizes(main);
      const queue = [...plan.builds].sort((a, b) => (sizes.get(b.table) ?? 0) - (sizes.get(a.table) ?? 0));
      const busy = new Set<string>();
      // resolved (and renewed) each time a build ends: a worker waiting for a free table looks again
      let buildEnded!: Promise<void>;
      let announce!: () => void;
      const renew = () => {
        buildEnded = new Promise<void>((r) => {
          announce = r;
        });
      };
      renew();
      const worker = async (c: Client) => {
        await c.query(plan.preamble);
        while (queue.length > 0) {
          const i = queue.findIndex((b) => !busy.has(b.table));
          if (i < 0) {
            await buildEnded;
            continue;
          }
          const [b] = queue.splice(i, 1);
          busy.add(b.table);
          try {
            await c.query(b.sql);
          } catch (e) {
            this.log.warn('an index build failed beside the others: it runs again after them, in order', {
              source: this.target.source,
              statement: b.sql.slice(0, 200),
              error: (e as Error).message,
            });
            failed.push(b);
          } finally {
            busy.delete(b.table);
            const done = announce;
            renew();
            done();
          }
        }
      };
      await Promise.all(clients.slice(0, wanted).map(worker));
    }
    await main.query(plan.rest(failed));
  }

  async abort(): Promise<void> {
    for (const s of this.streams.values()) s.copy?.destroy();
    await this.closeAll();
    this.releaseHeap();
  }

  private async closeAll(): Promise<void> {
    const clients = [...[...this.streams.values()].map((s) => s.client), ...this.extraClients];
    this.streams.clear();
    this.extraClients = [];
    await Promise.all(clients.map((c) => closeQuietly(c)));
  }

  private stream0(): Client {
    const s = this.streams.get(0);
    if (!s) throw new PgferryError('PROTOCOL_ERROR', 'initial copy message before syncBegin');
    return s.client;
  }

  /** The stream `id`, its connection opened on first use. */
  private async stream(id: number): Promise<Stream> {
    this.stream0();
    if (!Number.isInteger(id) || id < 0 || id >= COPY_STREAMS_MAX)
      throw new PgferryError(
        'PROTOCOL_ERROR',
        `copy stream ${id} is out of range (0-${COPY_STREAMS_MAX - 1})`,
      );
    let s = this.streams.get(id);
    if (!s) {
      const client = await connectReplica(this.syncUrl, 'pgferry-sync');
      s = { client, copy: null, copyDone: null, table: null, inTransaction: false };
      this.streams.set(id, s);
    }
    return s;
  }
}

/** Heap bytes of every table, keyed as pg_dump writes them (schema.name, quoted where needed). */
async function tableSizes(c: Client): Promise<Map<string, number>> {
  const r = await c.query<{ name: string; bytes: string }>(
    `SELECT format('%I.%I', n.nspname, c.relname) AS name, pg_relation_size(c.oid) AS bytes
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind IN ('r', 'm', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')`,
  );
  return new Map(r.rows.map((x) => [x.name, Number(x.bytes)]));
}
