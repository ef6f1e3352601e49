/**
 * Receives an initial copy into a fresh database `<db>__sync`: pre-data schema, each table's COPY stream
 * (streamed straight into COPY FROM, never held whole in memory), post-data schema, sequences, and the
 * state row marking the copy complete at the slot's consistent point. Then the copy replaces the old replica.
 */
import type { Writable } from 'node:stream';
import type { Client } from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { PgferryError } from '../../shared/errors';
import { formatLsn, type Lsn, parseLsn } from '../../shared/lsn';
import type { SequenceValue, TableRef } from '../../shared/protocol/messages';
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
import { migrateMetadata } from './metadata';
import { qualifiedName, quoteLiteral } from './sql';
import { closeQuietly } from '../../shared/pg-close';

export interface SyncTarget {
  source: string;
  adminUrl: string;
  database: string;
}

export class InitialSync {
  private client: Client | null = null;
  private copy: Writable | null = null;
  private copyDone: Promise<void> | null = null;
  private consistentLsn: Lsn = 0n as Lsn;
  private syncId = '';
  private systemIdentifier = '';
  readonly startedAt = Date.now();
  bytes = 0;
  tables = 0;

  constructor(
    private readonly target: SyncTarget,
    private readonly log: Logger,
  ) {}

  async begin(m: {
    syncId: string;
    systemIdentifier: string;
    consistentLsn: string;
    schemaPre: string;
  }): Promise<void> {
    this.syncId = m.syncId;
    this.systemIdentifier = m.systemIdentifier;
    this.consistentLsn = parseLsn(m.consistentLsn);
    const name = syncDatabaseName(this.target.database);
    await withAdmin(this.target.adminUrl, (admin) => recreateDatabase(admin, name));
    this.client = await connectReplica(replicaUrlFor(this.target.adminUrl, name), 'pgferry-sync');
    await this.client.query(m.schemaPre);
    await this.client.query('RESET search_path');
    await migrateMetadata(this.client);
    this.log.info('initial copy started', {
      source: this.target.source,
      database: name,
      consistentLsn: m.consistentLsn,
      syncId: m.syncId,
    });
  }

  async startTable(table: TableRef, format: 'binary' | 'text'): Promise<void> {
    const c = this.need();
    const stream = c.query(
      copyFrom(`COPY ${qualifiedName(table.schema, table.name)} FROM STDIN WITH (FORMAT ${format})`),
    );
    this.copy = stream;
    this.copyDone = new Promise<void>((resolve, reject) => {
      stream.on('finish', () => resolve());
      stream.on('error', reject);
    });
    this.copyDone.catch(() => undefined);
  }

  async data(chunk: Buffer): Promise<void> {
    if (!this.copy) throw new PgferryError('PROTOCOL_ERROR', 'copy data outside of a table');
    this.bytes += chunk.length;
    if (!this.copy.write(chunk)) {
      const copy = this.copy;
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

  async endTable(): Promise<void> {
    if (!this.copy || !this.copyDone)
      throw new PgferryError('PROTOCOL_ERROR', 'end of a table that was not started');
    this.copy.end();
    await this.copyDone;
    this.copy = null;
    this.copyDone = null;
    this.tables++;
  }

  /** Finishes the copy, swaps it into place, and returns an Applier-ready applied LSN. */
  async finish(schemaPost: string, sequences: SequenceValue[]): Promise<Lsn> {
    const c = this.need();
    const dataDoneAt = Date.now();
    await c.query(schemaPost);
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
    await c.end();
    this.client = null;
    const swapAt = Date.now();
    await swapInSyncedDatabase(this.target.adminUrl, this.target.database);
    this.log.info('initial copy complete', {
      dataSeconds: (dataDoneAt - this.startedAt) / 1000,
      postDataSeconds: (postDataDoneAt - dataDoneAt) / 1000,
      swapSeconds: (Date.now() - swapAt) / 1000,
      source: this.target.source,
      database: this.target.database,
      tables: this.tables,
      bytes: this.bytes,
      seconds: (Date.now() - this.startedAt) / 1000,
    });
    return this.consistentLsn;
  }

  async abort(): Promise<void> {
    this.copy?.destroy();
    await closeQuietly(this.client);
    this.client = null;
  }

  private need(): Client {
    if (!this.client) throw new PgferryError('PROTOCOL_ERROR', 'initial copy message before syncBegin');
    return this.client;
  }
}
