/**
 * Applies a source's change stream to its replica database, in commit order, exactly once.
 *
 * Several source transactions share one replica transaction (a group); the group's last commit LSN is
 * written to pgferry.state in that same transaction, so the replica always equals the primary as of one
 * commit, and the applied LSN can never disagree with the data. A large source transaction is applied as
 * it streams (statements are flushed every `maxBatchBytes`), so memory stays bounded.
 */
import type { ClientBase } from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { PgferryError } from '../../shared/errors';
import { formatLsn, type Lsn, parseLsn } from '../../shared/lsn';
import type { Change, RelationInfo, SequenceValue, Value } from '../../shared/protocol/messages';
import { ddlStatements } from './ddl-statements';
import { type Prepared, qualifiedName, quoteLiteral, RelationSql } from './sql';

/** runs of at least this many inserts into one table go in by COPY, shorter ones as one multi-row INSERT */
const COPY_MIN_ROWS = 50;

const INSERT_LSN_SQL = 'SELECT pg_current_wal_insert_lsn()::text AS pgferry_commit_wal';

interface QueryResultLike {
  rows?: Record<string, unknown>[];
}

interface CopyOp {
  copy: string;
  data: string;
}

/** the primary's DDL capture table (see agent/ddl-capture.ts): its inserts are replayed, not stored */
const DDL_SCHEMA = 'pgferry';
const DDL_TABLE = 'ddl_log';

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

export interface ApplierStats {
  transactionsApplied: number;
  rowsApplied: number;
  groupsCommitted: number;
  lastCommitTime: Date | null;
}

export class Applier {
  private readonly relations = new Map<number, RelationSql>();
  private applied: Lsn;
  private sql: (string | CopyOp)[] = [];
  private inflight: Promise<void> = Promise.resolve();
  /** rows of the last statement of the last SQL batch run */
  private lastRows: Record<string, unknown>[] = [];
  /** committed on the replica, waiting for its WAL flush before being reported durable */
  private readonly pendingAcks: { source: Lsn; replicaWal: bigint }[] = [];
  private flushTimer: NodeJS.Timeout | null = null;
  private polling = false;
  private sqlBytes = 0;
  private groupOpen = false;
  private groupStartedAt = 0;
  private groupTxns = 0;
  private groupEnd: Lsn | null = null;
  private groupCommitTime: string | null = null;
  private readonly touched = new Map<string, [string, string]>();
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

  /** statements prepared on this connection (names are unique per relation message) */
  private readonly prepared = new Set<string>();

  private pushPrepared(p: Prepared): void {
    if (!this.prepared.has(p.name)) {
      this.push(p.prepare);
      this.prepared.add(p.name);
    }
    this.push(p.execute);
  }

  private push(stmt: string): void {
    this.sql.push(stmt);
    this.sqlBytes += stmt.length;
  }

  private touch(r: RelationSql): void {
    const key = `${r.info.schema}\u0000${r.info.name}`;
    if (!this.touched.has(key)) this.touched.set(key, [r.info.schema, r.info.name]);
  }

  private endFullUpdateRun(): void {
    const r = this.fullUpdateRel;
    if (r && this.fullUpdates.length) {
      const u = this.fullUpdates;
      this.push(u.length === 1 ? r.update(u[0].v, undefined, u[0].old) : r.updateFullRows(u));
    }
    this.fullUpdateRel = null;
    this.fullUpdates = [];
    this.fullUpdateNewKeys.clear();
  }

  private endFullDeleteRun(): void {
    this.endFullUpdateRun();
    if (this.fullDeleteRel && this.fullDeleteRows.length) {
      this.push(
        this.fullDeleteRows.length === 1
          ? this.fullDeleteRel.delete(this.fullDeleteRows[0])
          : this.fullDeleteRel.deleteFullRows(this.fullDeleteRows),
      );
    }
    this.fullDeleteRel = null;
    this.fullDeleteRows = [];
  }

  private endInsertRun(): void {
    this.endFullDeleteRun();
    const r = this.insertRel;
    const rows = this.insertRows;
    if (r && rows.length >= COPY_MIN_ROWS) {
      this.sql.push({ copy: r.copyStatement, data: r.copyText(rows) });
    } else if (r && rows.length <= 3) {
      for (const v of rows) this.pushPrepared(r.preparedInsert(v));
    } else if (r && rows.length) {
      this.push(r.insertPrefix + rows.map((v) => r.valuesTuple(v)).join(', '));
    }
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
            this.push('BEGIN');
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
          for (const v of c.v) this.sqlBytes += v === null ? 4 : v.length + 4;
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
            this.sqlBytes += 128;
          } else {
            this.endInsertRun();
            const p = r.preparedUpdate(c.v, c.toast, c.old);
            if (p) this.pushPrepared(p);
            else {
              const stmt = r.update(c.v, c.toast, c.old);
              if (stmt) this.push(stmt);
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
            this.sqlBytes += 64;
          } else {
            const p = r.preparedDelete(c.old);
            if (p) this.pushPrepared(p);
            else this.push(r.delete(c.old));
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
          this.push(
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
      if (this.sqlBytes >= (this.opts.maxBatchBytes ?? 1024 * 1024)) {
        this.endInsertRun();
        await this.flushSql(false);
      }
    }
  }

  /** Replays a captured DDL command at its place in the stream, under the search_path it ran with. */
  private replayDdl(command: string, searchPath: Value): void {
    this.endInsertRun();
    this.push(`SELECT set_config('search_path', ${quoteLiteral(searchPath ?? 'public')}, true)`);
    // CONCURRENTLY cannot run inside the replica's transaction; the plain form has the same result
    for (const stmt of ddlStatements(command)) this.push(stmt.replace(/\b(INDEX\s+)CONCURRENTLY\b/gi, '$1'));
    this.push('RESET search_path');
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
    if (!this.groupOpen || this.inTxn || this.groupEnd === null) return;
    const end = this.groupEnd;
    this.push(
      `UPDATE pgferry.state SET applied_lsn = '${formatLsn(end)}', applied_at = now()` +
        (this.groupCommitTime
          ? `, last_commit_time = to_timestamp(${quoteLiteral(this.groupCommitTime)}::numeric / 1000000)`
          : '') +
        ' WHERE id = 1',
    );
    if (this.touched.size) {
      const rows = [...this.touched.values()].map(
        ([s, t]) => `(${quoteLiteral(s)}, ${quoteLiteral(t)}, '${formatLsn(end)}')`,
      );
      this.push(
        `INSERT INTO pgferry.table_changes (schema_name, table_name, last_change_lsn) VALUES ${rows.join(', ')}
         ON CONFLICT (schema_name, table_name) DO UPDATE SET last_change_lsn = excluded.last_change_lsn`,
      );
    }
    if (this.ddlInGroup) {
      // a schema change rewrites what a snapshot holds of every table: none may be hard-linked
      this.push(
        `INSERT INTO pgferry.table_changes (schema_name, table_name, last_change_lsn)
         SELECT schemaname, tablename, '${formatLsn(end)}' FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema', 'pgferry')
         ON CONFLICT (schema_name, table_name) DO UPDATE SET last_change_lsn = excluded.last_change_lsn`,
      );
    }
    this.push('COMMIT');
    // where the commit record ends in the replica's WAL (asyncCommit reports it durable once flushed)
    if (this.opts.asyncCommit) this.push(INSERT_LSN_SQL);
    await this.flushSql();
    const commitWal = this.opts.asyncCommit ? this.insertLsnFromLastRows() : null;
    this.ddlInGroup = false;
    this.applied = end;
    this.groupOpen = false;
    this.groupEnd = null;
    this.groupTxns = 0;
    this.touched.clear();
    this.stats.groupsCommitted++;
    if (this.groupCommitTime)
      this.stats.lastCommitTime = new Date(Number(BigInt(this.groupCommitTime) / 1000n));
    this.committed(end, commitWal);
  }

  /** A replica commit covering the source up to `end` happened: report it now or once flushed. */
  private committed(end: Lsn, commitWal: bigint | null): void {
    if (!this.opts.asyncCommit || commitWal === null) {
      this.onDurable(end);
      return;
    }
    this.pendingAcks.push({ source: end, replicaWal: commitWal });
    this.schedulePoll(0);
  }

  private insertLsnFromLastRows(): bigint {
    const l = this.lastRows[0]?.pgferry_commit_wal;
    if (typeof l !== 'string')
      throw new PgferryError('INTERNAL', 'the replica did not report its WAL position after a commit');
    return parseLsn(l);
  }

  private schedulePoll(delayMs = 20): void {
    if (this.flushTimer || this.pendingAcks.length === 0) return;
    this.flushTimer = setTimeout(() => {
      this.flushTimer = null;
      void this.pollFlush();
    }, delayMs);
  }

  /** Reports durable every source position whose replica commit is inside the flushed WAL. */
  private async pollFlush(): Promise<void> {
    if (this.polling || this.pendingAcks.length === 0) return;
    this.polling = true;
    try {
      const r = await this.client.query<{ l: string }>('SELECT pg_current_wal_flush_lsn()::text AS l');
      const flushed = parseLsn(r.rows[0].l);
      let last: Lsn | null = null;
      while (this.pendingAcks.length && this.pendingAcks[0].replicaWal <= flushed)
        last = this.pendingAcks.shift()!.source;
      if (last !== null) this.onDurable(last);
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
    await this.runSql(
      `UPDATE pgferry.state SET applied_lsn = '${formatLsn(lsn)}', applied_at = now() WHERE id = 1;\n${INSERT_LSN_SQL}`,
    );
    this.applied = lsn;
    this.committed(lsn, this.opts.asyncCommit ? this.insertLsnFromLastRows() : null);
  }

  /** Records the primary's sequence values and moves the replica's sequences to them. */
  async applySequences(seqs: SequenceValue[], lsn: Lsn | null): Promise<void> {
    if (seqs.length === 0) return;
    const stmts: string[] = [];
    for (const s of seqs) {
      const name = quoteLiteral(qualifiedName(s.schema, s.name));
      stmts.push(
        `SELECT setval(c.oid, ${quoteLiteral(s.lastValue)}::bigint, ${s.isCalled}) FROM pg_class c WHERE c.oid = to_regclass(${name})`,
      );
    }
    const rows = seqs.map(
      (s) =>
        `(${quoteLiteral(s.schema)}, ${quoteLiteral(s.name)}, ${quoteLiteral(s.lastValue)}::bigint, ${s.isCalled}, ${lsn === null ? 'NULL' : `'${formatLsn(lsn)}'`})`,
    );
    stmts.push(
      `INSERT INTO pgferry.sequences (schema_name, sequence_name, last_value, is_called, reported_lsn) VALUES ${rows.join(', ')}
       ON CONFLICT (schema_name, sequence_name) DO UPDATE SET last_value = excluded.last_value, is_called = excluded.is_called,
         reported_lsn = excluded.reported_lsn, reported_at = now()`,
    );
    if (this.groupOpen) {
      for (const s of stmts) this.push(s);
    } else {
      await this.client.query(stmts.join(';\n'));
    }
  }

  /** Throws away an open group (after an error or a lost link); nothing of it was committed. */
  async abort(): Promise<void> {
    this.close();
    await this.inflight.catch(() => undefined);
    this.inflight = Promise.resolve();
    this.sql = [];
    this.sqlBytes = 0;
    this.insertRel = null;
    this.insertRows = [];
    this.fullDeleteRel = null;
    this.fullDeleteRows = [];
    this.fullUpdateRel = null;
    this.fullUpdates = [];
    this.fullUpdateNewKeys.clear();
    this.touched.clear();
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
    // a PREPARE inside a failed batch may never have run: forget them all and drop those that did (after the rollback, or DEALLOCATE would fail too)
    if (this.prepared.size) {
      this.prepared.clear();
      await Promise.race([
        this.client.query('DEALLOCATE ALL').catch(() => undefined),
        new Promise((r) => setTimeout(r, 2000).unref()),
      ]);
    }
  }

  /**
   * Sends what is buffered. Double-buffered: the previous batch must have completed, but this one may
   * still be running when this returns (the next frame is decoded meanwhile); `wait` waits for it too.
   * A failure surfaces at the next flush, commit or wait — before anything is reported durable.
   */
  private async flushSql(wait = true): Promise<void> {
    await this.inflight;
    if (this.sql.length > 0) {
      const ops = this.sql;
      this.sql = [];
      this.sqlBytes = 0;
      const run = this.runOps(ops);
      run.catch(() => undefined);
      this.inflight = run;
    }
    if (wait) await this.inflight;
  }

  private async runOps(ops: (string | CopyOp)[]): Promise<void> {
    let text: string[] = [];
    for (const op of ops) {
      if (typeof op === 'string') {
        text.push(op);
        continue;
      }
      if (text.length) await this.runSql(text.join(';\n'));
      text = [];
      await this.runCopy(op);
    }
    if (text.length) await this.runSql(text.join(';\n'));
  }

  private async runCopy(op: CopyOp): Promise<void> {
    try {
      const stream = this.client.query(copyFrom(op.copy));
      await new Promise<void>((resolve, reject) => {
        stream.on('finish', resolve);
        stream.on('error', reject);
        stream.end(op.data);
      });
    } catch (e) {
      throw new PgferryError(
        'APPLY_FAILED',
        `applying inserts on the replica failed: ${(e as Error).message}`,
        { cause: e },
      );
    }
  }

  private async runSql(text: string): Promise<void> {
    try {
      const r = (await this.client.query(text)) as unknown as QueryResultLike | QueryResultLike[];
      const last = Array.isArray(r) ? r[r.length - 1] : r;
      this.lastRows = last?.rows ?? [];
    } catch (e) {
      const err = e as Error & { position?: string };
      throw new PgferryError('APPLY_FAILED', `applying changes on the replica failed: ${err.message}`, {
        cause: e,
        details: {
          near: err.position
            ? text.slice(Math.max(0, Number(err.position) - 200), Number(err.position) + 200)
            : undefined,
        },
      });
    }
  }
}
