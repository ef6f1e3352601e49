/**
 * Applies a source's change stream to its replica database, in commit order, exactly once.
 *
 * Several source transactions share one replica transaction (a group); the group's last commit LSN is
 * written to pgferry.state in that same transaction, so the replica always equals the primary as of one
 * commit, and the applied LSN can never disagree with the data. A large source transaction is applied as
 * it streams (statements are flushed every `maxBatchBytes`), so memory stays bounded.
 *
 * Each flush is one pipelined round trip in the extended query protocol (pipeline-batch.ts, pipeline.ts):
 * keyed updates and deletes and short insert runs are named statements bound with the raw text values,
 * long insert runs go by COPY inside the same batch.
 */
import type { ClientBase } from 'pg';
import { PgferryError } from '../../shared/errors';
import { formatLsn, type Lsn, parseLsn } from '../../shared/lsn';
import {
  type Change,
  commitTimeMs,
  type RelationInfo,
  type SequenceValue,
  type Value,
} from '../../shared/protocol/messages';
import {
  BEGIN,
  COMMIT,
  MARK_ALL_TABLES_CHANGED,
  markTablesChanged,
  RECORD_SEQUENCE,
  RESET_SEARCH_PATH,
  SET_APPLIED,
  SET_SEARCH_PATH,
  SET_SEQUENCE,
  TABLE_CHANGES_ROWS,
  WAL_POSITION,
} from './apply-statements';
import { ddlStatements } from './ddl-statements';
import { Pipeline, parsedStatements } from './pipeline';
import { PipelineBatch } from './pipeline-batch';
import { qualifiedName, RelationSql } from './sql';

/**
 * Runs of at least this many inserts into one table go in by COPY, shorter ones row by row (a COPY inside
 * the batch costs no round trip of its own; measured on the replica it beats row-by-row from ~5 rows).
 */
const COPY_MIN_ROWS = 10;

/**
 * Durable positions are reported at most this often. Commits bring the replica's flushed WAL position
 * with them; the replica is asked on its own only when no commit brought a fresh one for this long.
 */
const FLUSH_POLL_MS = 20;

/** the primary's DDL capture table (see agent/ddl-capture.ts): its inserts are replayed, not stored */
export const DDL_SCHEMA = 'pgferry';
export const DDL_TABLE = 'ddl_log';

export interface ApplierOptions {
  maxGroupTransactions: number;
  maxGroupDelayMs: number;
  /** flush buffered SQL to the replica past this size */
  maxBatchBytes?: number;
  /** rows per multi-row INSERT */
  maxInsertRows?: number;
  /**
   * Commit replica transactions without waiting for their WAL flush (as PostgreSQL's own apply worker
   * does) and report them durable once the replica's flushed WAL passes them. Keeps fsync out of the
   * apply path; what is reported durable stays exactly what survives a crash of the replica.
   */
  asyncCommit?: boolean;
}

/** A commit made by one applier, for the applier that reports this source's durable position. */
export interface HandOff {
  end: Lsn;
  wal: { inserted: bigint; flushed: bigint };
  transactions: number;
  rows: number;
  lastCommitTime: Date | null;
}

export interface ApplierStats {
  transactionsApplied: number;
  rowsApplied: number;
  groupsCommitted: number;
  lastCommitTime: Date | null;
}

export class Applier {
  private readonly relations = new Map<number, RelationSql>();
  private applied: Lsn;
  /** statements parsed on this connection (names are unique per relation message) */
  private readonly prepared: Set<string>;
  /** what the next round trip sends */
  private batch: PipelineBatch;
  private inflight: Promise<void> = Promise.resolve();
  /** rows of the last row-returning statement of the last batch run */
  private lastRows: Value[][] = [];
  /** committed on the replica, waiting for its WAL flush before being reported durable */
  private readonly pendingAcks: { source: Lsn; replicaWal: bigint }[] = [];
  private flushTimer: NodeJS.Timeout | null = null;
  private polling = false;
  /** the replica's flushed WAL position as last seen, and when */
  private knownFlushed = 0n;
  private knownFlushedAt = 0;
  /** bytes of rows held in an open insert / identity-full run (not yet in the batch) */
  private heldBytes = 0;
  private groupOpen = false;
  private groupStartedAt = 0;
  private groupTxns = 0;
  private groupEnd: Lsn | null = null;
  private groupCommitTime: string | null = null;
  /** tables changed in the open group (by schema and name: a table may have had several relation messages) */
  private readonly touched = new Map<string, [string, string]>();
  private lastTouched: RelationSql | null = null;
  private inTxn = false;
  private skipTxn = false;
  private insertRel: RelationSql | null = null;
  private insertRows: Value[][] = [];
  private fullDeleteRel: RelationSql | null = null;
  private fullDeleteRows: Value[][] = [];
  private fullUpdateRel: RelationSql | null = null;
  private fullUpdates: { old: Value[]; v: Value[] }[] = [];
  private fullUpdateNewKeys = new Set<string>();
  private ddl: { relid: number; command: number; searchPath: number } | null = null;
  private ddlInGroup = false;
  readonly stats: ApplierStats = {
    transactionsApplied: 0,
    rowsApplied: 0,
    groupsCommitted: 0,
    lastCommitTime: null,
  };

  constructor(
    private readonly client: ClientBase,
    appliedLsn: Lsn,
    private readonly opts: ApplierOptions,
    private readonly onDurable: (lsn: Lsn) => void,
  ) {
    this.applied = appliedLsn;
    this.prepared = parsedStatements(client);
    this.batch = new PipelineBatch(this.prepared);
  }

  get appliedLsn(): Lsn {
    return this.applied;
  }

  get inTransaction(): boolean {
    return this.inTxn;
  }

  async setRelation(info: RelationInfo): Promise<void> {
    if (info.schema === DDL_SCHEMA && info.name === DDL_TABLE) {
      this.ddl = {
        relid: info.relid,
        command: info.columns.findIndex((c) => c.name === 'command'),
        searchPath: info.columns.findIndex((c) => c.name === 'search_path'),
      };
      return;
    }
    // the relation may reflect DDL still buffered: run what is pending first
    this.endInsertRun();
    await this.flushSql();
    const r = await this.client.query<{ attname: string }>(
      `SELECT attname FROM pg_attribute WHERE attrelid = to_regclass($1) AND attidentity = 'a'`,
      [qualifiedName(info.schema, info.name)],
    );
    this.relations.set(info.relid, new RelationSql(info, new Set(r.rows.map((x) => x.attname))));
  }

  private rel(relid: number): RelationSql {
    const r = this.relations.get(relid);
    if (!r)
      throw new PgferryError(
        'PROTOCOL_ERROR',
        `change for unknown relation ${relid} (no relation message was sent)`,
      );
    return r;
  }

  private touch(r: RelationSql): void {
    if (this.lastTouched === r) return;
    this.lastTouched = r;
    if (!this.touched.has(r.tableKey)) this.touched.set(r.tableKey, [r.info.schema, r.info.name]);
  }

  // the runs below end often (before every keyed change): nothing is allocated when none is open

  private endFullUpdateRun(): void {
    const r = this.fullUpdateRel;
    if (!r) return;
    const u = this.fullUpdates;
    if (u.length) {
      const stmt = u.length === 1 ? r.update(u[0].v, undefined, u[0].old) : r.updateFullRows(u);
      if (stmt) this.batch.executeText(stmt);
    }
    this.heldBytes = 0;
    this.fullUpdateRel = null;
    this.fullUpdates = [];
    this.fullUpdateNewKeys.clear();
  }

  private endFullDeleteRun(): void {
    this.endFullUpdateRun();
    const r = this.fullDeleteRel;
    if (!r) return;
    const rows = this.fullDeleteRows;
    if (rows.length) this.batch.executeText(rows.length === 1 ? r.delete(rows[0]) : r.deleteFullRows(rows));
    this.heldBytes = 0;
    this.fullDeleteRel = null;
    this.fullDeleteRows = [];
  }

  private endInsertRun(): void {
    this.endFullDeleteRun();
    const r = this.insertRel;
    if (!r) return;
    const rows = this.insertRows;
    if (rows.length >= COPY_MIN_ROWS) {
      this.batch.copyRows(r.copyStatement, rows);
    } else {
      const stmt = r.insertStatement;
      for (const v of rows) this.batch.execute(stmt, v);
    }
    this.heldBytes = 0;
    this.insertRel = null;
    this.insertRows = [];
  }

  async apply(items: Change[]): Promise<void> {
    const maxRows = this.opts.maxInsertRows ?? 10_000;
    for (const c of items) {
      switch (c.k) {
        case 'B': {
          this.inTxn = true;
          // commit LSNs are ordered: one below the applied end position was applied already
          this.skipTxn = parseLsn(c.commitLsn) < this.applied;
          if (!this.skipTxn && !this.groupOpen) {
            this.groupOpen = true;
            this.groupStartedAt = Date.now();
            this.batch.execute(BEGIN, []);
          }
          break;
        }
        case 'I': {
          if (this.skipTxn) break;
          if (c.r === this.ddl?.relid) {
            this.replayDdl(c.v[this.ddl.command] ?? '', c.v[this.ddl.searchPath]);
            break;
          }
          const r = this.rel(c.r);
          if (this.insertRel !== r || this.insertRows.length >= maxRows) {
            this.endInsertRun();
            this.insertRel = r;
            this.touch(r);
          }
          this.insertRows.push(c.v);
          for (const v of c.v) this.heldBytes += v === null ? 4 : v.length + 4;
          this.stats.rowsApplied++;
          break;
        }
        case 'U': {
          if (this.skipTxn || c.r === this.ddl?.relid) break;
          const r = this.rel(c.r);
          if (r.full && c.old) {
            if (this.insertRel || this.fullDeleteRel) this.endInsertRun();
            const oldKey = JSON.stringify(c.old);
            if (
              this.fullUpdateRel !== r ||
              this.fullUpdates.length >= 5000 ||
              this.fullUpdateNewKeys.has(oldKey)
            ) {
              this.endFullUpdateRun();
            }
            this.fullUpdateRel = r;
            this.fullUpdates.push({ old: c.old, v: c.v });
            this.fullUpdateNewKeys.add(JSON.stringify(c.v));
            this.heldBytes += 128;
          } else {
            this.endInsertRun();
            // the old key came only if the key changed; else the new values hold it
            const keySrc = c.old ?? c.v;
            const k = r.keyUsable(keySrc) ? r.updateByKey(c.toast, c.old !== undefined) : null;
            if (k) this.batch.execute(k.stmt, c.v, k.set, keySrc, k.key);
            else {
              const stmt = r.update(c.v, c.toast, c.old);
              if (stmt) this.batch.executeText(stmt);
            }
          }
          this.touch(r);
          this.stats.rowsApplied++;
          break;
        }
        case 'D': {
          if (this.skipTxn || c.r === this.ddl?.relid) break;
          if (this.insertRel) this.endInsertRun();
          const r = this.rel(c.r);
          if (r.full) {
            if (this.fullUpdateRel) this.endFullUpdateRun();
            if (this.fullDeleteRel !== r || this.fullDeleteRows.length >= 5000) this.endFullDeleteRun();
            this.fullDeleteRel = r;
            this.fullDeleteRows.push(c.old);
            this.heldBytes += 64;
          } else {
            const k = r.keyUsable(c.old) ? r.deleteByKey() : null;
            if (k) this.batch.execute(k.stmt, c.old, k.key);
            else this.batch.executeText(r.delete(c.old));
          }
          this.touch(r);
          this.stats.rowsApplied++;
          break;
        }
        case 'T': {
          if (this.skipTxn) break;
          this.endInsertRun();
          const rels = c.rs.filter((id) => id !== this.ddl?.relid).map((id) => this.rel(id));
          if (rels.length === 0) break;
          for (const r of rels) this.touch(r);
          this.batch.executeText(
            `TRUNCATE ${rels.map((r) => r.table).join(', ')}${c.restartIdentity ? ' RESTART IDENTITY' : ''}${c.cascade ? ' CASCADE' : ''}`,
          );
          break;
        }
        case 'C': {
          this.inTxn = false;
          if (this.skipTxn) {
            this.skipTxn = false;
            break;
          }
          this.endInsertRun();
          this.groupEnd = parseLsn(c.endLsn);
          this.groupCommitTime = c.commitTime;
          this.groupTxns++;
          this.stats.transactionsApplied++;
          break;
        }
      }
      if (this.batch.byteLength + this.heldBytes >= (this.opts.maxBatchBytes ?? 1024 * 1024)) {
        this.endInsertRun();
        await this.flushSql(false);
      }
    }
  }

  /** Replays a captured DDL command at its place in the stream, under the search_path it ran with. */
  private replayDdl(command: string, searchPath: Value): void {
    this.endInsertRun();
    this.batch.execute(SET_SEARCH_PATH, [searchPath ?? 'public']);
    // CONCURRENTLY cannot run inside the replica's transaction; the plain form has the same result
    for (const stmt of ddlStatements(command))
      this.batch.executeText(stmt.replace(/\b(INDEX\s+)CONCURRENTLY\b/gi, '$1'));
    this.batch.execute(RESET_SEARCH_PATH, []);
    this.ddlInGroup = true;
  }

  /** Whether the open group should be committed now (called after each frame). */
  shouldCommit(moreInputWaiting: boolean): boolean {
    if (!this.groupOpen || this.inTxn || this.groupEnd === null) return false;
    if (!moreInputWaiting) return true;
    return (
      this.groupTxns >= this.opts.maxGroupTransactions ||
      Date.now() - this.groupStartedAt >= this.opts.maxGroupDelayMs
    );
  }

  /** Commits the open group (all its source transactions are complete) and reports the durable LSN. */
  async commitGroup(): Promise<void> {
    const done = await this.commitOpenGroup();
    if (done) this.committed(done.end, done.wal);
  }

  /**
   * Commits the open group without reporting it: the caller hands the result to the applier that reports
   * for this source (`adoptCommit`), in commit order. Needs `asyncCommit` (the commit's WAL position).
   */
  async commitForHandOff(): Promise<HandOff | null> {
    const done = await this.commitOpenGroup();
    if (!done) return null;
    if (!done.wal) throw new PgferryError('INTERNAL', 'a handed-off commit needs asyncCommit');
    return {
      end: done.end,
      wal: done.wal,
      transactions: this.stats.transactionsApplied,
      rows: this.stats.rowsApplied,
      lastCommitTime: this.stats.lastCommitTime,
    };
  }

  /**
   * A transaction committed on another connection to this replica, after everything this applier has
   * committed (see stream-apply.ts): it is reported durable in order with this applier's own commits.
   */
  adoptCommit(h: HandOff): void {
    this.applied = h.end;
    this.stats.transactionsApplied += h.transactions;
    this.stats.rowsApplied += h.rows;
    this.stats.groupsCommitted++;
    if (h.lastCommitTime) this.stats.lastCommitTime = h.lastCommitTime;
    this.committed(h.end, h.wal);
  }

  /** Ends the open insert run and adds one SQL statement (no parameters) to what the next round trip sends. */
  statement(sql: string): void {
    this.endInsertRun();
    this.batch.executeText(sql);
  }

  /** Sends everything buffered and waits for the replica's answer. */
  async flush(): Promise<void> {
    this.endInsertRun();
    await this.flushSql();
  }

  private async commitOpenGroup(): Promise<{
    end: Lsn;
    wal: { inserted: bigint; flushed: bigint } | null;
  } | null> {
    if (!this.groupOpen || this.inTxn || this.groupEnd === null) return null;
    const end = this.groupEnd;
    const lsn = formatLsn(end);
    this.batch.execute(SET_APPLIED, [lsn, this.groupCommitTime]);
    const touched = [...this.touched.values()];
    for (let at = 0; at < touched.length; at += TABLE_CHANGES_ROWS) {
      const chunk = touched.slice(at, at + TABLE_CHANGES_ROWS);
      this.batch.execute(markTablesChanged(chunk.length), [lsn, ...chunk.flat()]);
    }
    // a schema change rewrites what a snapshot holds of every table: none may be hard-linked
    if (this.ddlInGroup) this.batch.execute(MARK_ALL_TABLES_CHANGED, [lsn]);
    this.batch.execute(COMMIT, []);
    // where the commit record ends in the replica's WAL (asyncCommit reports it durable once flushed)
    if (this.opts.asyncCommit) this.batch.execute(WAL_POSITION, []);
    await this.flushSql();
    const wal = this.opts.asyncCommit ? this.walFromLastRows() : null;
    this.ddlInGroup = false;
    this.applied = end;
    this.groupOpen = false;
    this.groupEnd = null;
    this.groupTxns = 0;
    this.touched.clear();
    this.lastTouched = null;
    this.stats.groupsCommitted++;
    if (this.groupCommitTime)
      this.stats.lastCommitTime = new Date(Math.floor(commitTimeMs(this.groupCommitTime)));
    return { end, wal };
  }

  /**
   * A replica commit covering the source up to `end` happened: report it now or once flushed. `wal` is
   * the replica's WAL position right after the commit and how far it was flushed then.
   */
  private committed(end: Lsn, wal: { inserted: bigint; flushed: bigint } | null): void {
    if (!this.opts.asyncCommit || wal === null) {
      this.onDurable(end);
      return;
    }
    this.pendingAcks.push({ source: end, replicaWal: wal.inserted });
    this.sawFlushed(wal.flushed);
    this.schedulePoll();
  }

  private sawFlushed(flushed: bigint): void {
    if (flushed > this.knownFlushed) this.knownFlushed = flushed;
    this.knownFlushedAt = Date.now();
  }

  /** Reports durable every source position whose replica commit is inside the flushed WAL. */
  private ackFlushed(flushed: bigint): void {
    let last: Lsn | null = null;
    while (this.pendingAcks.length && this.pendingAcks[0].replicaWal <= flushed)
      last = this.pendingAcks.shift()!.source;
    if (last !== null) this.onDurable(last);
  }

  private walFromLastRows(): { inserted: bigint; flushed: bigint } {
    const [inserted, flushed] = this.lastRows[0] ?? [];
    if (typeof inserted !== 'string' || typeof flushed !== 'string')
      throw new PgferryError('INTERNAL', 'the replica did not report its WAL position after a commit');
    return { inserted: parseLsn(inserted), flushed: parseLsn(flushed) };
  }

  private schedulePoll(): void {
    if (this.flushTimer || this.pendingAcks.length === 0) return;
    this.flushTimer = setTimeout(() => {
      this.flushTimer = null;
      void this.reportFlushed();
    }, FLUSH_POLL_MS);
  }

  /**
   * Reports durable what the flushed WAL position covers; asks the replica for it only when no commit
   * brought a fresh one (under a steady load the commits do, and no extra round trip is made).
   */
  private async reportFlushed(): Promise<void> {
    if (this.polling || this.pendingAcks.length === 0) return;
    this.polling = true;
    try {
      if (Date.now() - this.knownFlushedAt >= FLUSH_POLL_MS) {
        const r = await this.client.query<{ l: string }>('SELECT pg_current_wal_flush_lsn()::text AS l');
        this.sawFlushed(parseLsn(r.rows[0].l));
      }
      this.ackFlushed(this.knownFlushed);
    } catch {
      // the connection broke: nothing more is reported durable; the agent resumes from the replica's state
      this.pendingAcks.length = 0;
    } finally {
      this.polling = false;
    }
    this.schedulePoll();
  }

  /** Stops reporting (the link is gone); unreported commits are found again from the replica's state. */
  close(): void {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = null;
    this.pendingAcks.length = 0;
  }

  /** Nothing to apply up to `lsn` (the source was idle): record the position so the slot can advance. */
  async advance(lsn: Lsn): Promise<void> {
    if (this.inTxn || this.groupOpen || lsn <= this.applied) return;
    // explicit transaction: the WAL position is read after the commit record
    this.batch.execute(BEGIN, []);
    this.batch.execute(SET_APPLIED, [formatLsn(lsn), null]);
    this.batch.execute(COMMIT, []);
    this.batch.execute(WAL_POSITION, []);
    await this.flushSql();
    this.applied = lsn;
    this.committed(lsn, this.opts.asyncCommit ? this.walFromLastRows() : null);
  }

  /** Records the primary's sequence values and moves the replica's sequences to them. */
  async applySequences(seqs: SequenceValue[], lsn: Lsn | null): Promise<void> {
    if (seqs.length === 0) return;
    const at = lsn === null ? null : formatLsn(lsn);
    for (const s of seqs) {
      const called = s.isCalled ? 'true' : 'false';
      this.batch.execute(SET_SEQUENCE, [qualifiedName(s.schema, s.name), s.lastValue, called]);
      this.batch.execute(RECORD_SEQUENCE, [s.schema, s.name, s.lastValue, called, at]);
    }
    // inside a group they commit with it; else at once, in one implicit transaction
    if (!this.groupOpen) await this.flushSql();
  }

  /** Throws away an open group (after an error or a lost link); nothing of it was committed. */
  async abort(): Promise<void> {
    this.close();
    await this.inflight.catch(() => undefined);
    this.inflight = Promise.resolve();
    this.batch = new PipelineBatch(this.prepared);
    this.heldBytes = 0;
    this.insertRel = null;
    this.insertRows = [];
    this.fullDeleteRel = null;
    this.fullDeleteRows = [];
    this.fullUpdateRel = null;
    this.fullUpdates = [];
    this.fullUpdateNewKeys.clear();
    this.touched.clear();
    this.lastTouched = null;
    this.ddlInGroup = false;
    const wasOpen = this.groupOpen;
    this.groupOpen = false;
    this.groupEnd = null;
    this.groupTxns = 0;
    this.inTxn = false;
    this.skipTxn = false;
    if (wasOpen) {
      // a broken connection can leave the query pending forever: bounded
      await Promise.race([
        this.client.query('ROLLBACK').catch(() => undefined),
        new Promise((r) => setTimeout(r, 2000).unref()),
      ]);
    }
    // a Parse inside a failed batch may never have run: forget them all and drop those that did (after the rollback, or DEALLOCATE would fail too)
    if (this.prepared.size) {
      this.prepared.clear();
      await Promise.race([
        this.client.query('DEALLOCATE ALL').catch(() => undefined),
        new Promise((r) => setTimeout(r, 2000).unref()),
      ]);
    }
  }

  /**
   * Sends what is buffered, as one round trip. Double-buffered: the previous batch must have completed,
   * but this one may still be running when this returns (the next frame is decoded meanwhile); `wait`
   * waits for it too. A failure surfaces at the next flush, commit or wait — before anything is reported
   * durable.
   */
  private async flushSql(wait = true): Promise<void> {
    await this.inflight;
    if (this.batch.length > 0) {
      const pipeline = new Pipeline(this.batch);
      this.batch = new PipelineBatch(this.prepared);
      this.client.query(pipeline);
      const run = pipeline.done.then((r) => {
        this.lastRows = r.rows;
      });
      run.catch(() => undefined);
      this.inflight = run;
    }
    if (wait) await this.inflight;
  }
}
