/**
 * A large transaction applied while the primary still streams it (link protocol 3), in a replica
 * transaction of its own on a second connection, instead of only at its commit from the spool. At the stream
 * commit only the tail remains: the replica's work overlaps the primary's, as with PostgreSQL 16's parallel
 * apply.
 *
 * It is an optimisation over the spool, never a replacement: the spool is still written (transaction-spool.ts),
 * and whenever this path gives up (an update or delete in a table without a usable key, a schema change or
 * a TRUNCATE, too many savepoints, any error on its connection, a lock it waits for) its transaction is
 * rolled back and the spool is replayed at the commit as before. Nothing of it is visible before the source's commit, since the replica
 * transaction commits only then. A COMMIT whose answer is lost may still have committed: the caller waits
 * for the backend to end and reads the replica's applied position before replaying anything.
 *
 * Locks: the replica transaction holds the row locks of the primary's open transaction, so another source
 * transaction that touches them could not have committed on the primary before it; the caller commits its
 * own open group before handing this path any work, so this one never waits on that group; a wait on anything
 * else ends at `lock_timeout` and falls back to the spool.
 *
 * Subtransactions: a SAVEPOINT before the first change of each; a rolled-back subtransaction is rolled back
 * to its savepoint, which also removes everything begun after it (the spool's rule). The rollback is sent at
 * once, so the rows it frees are free before any later source transaction is applied.
 */
import type { Client } from 'pg';
import { describeError } from '../../shared/errors';
import { parseLsn } from '../../shared/lsn';
import type { Change, RelationInfo } from '../../shared/protocol/messages';
import { closeQuietly } from '../../shared/pg-close';
import { Applier, DDL_SCHEMA, DDL_TABLE, type HandOff } from './applier';
import { connectReplica } from './database';

/** beyond PostgreSQL's per-backend subtransaction cache, every snapshot on the replica gets slower */
const MAX_SAVEPOINTS = 64;
/** a wait for a lock longer than this gives up this path (the spool replays the transaction at its commit) */
const LOCK_TIMEOUT_MS = 2000;

const savepointName = (subxid: number) => `pgferry_sx_${subxid}`;

export type GiveUp = (reason: string) => void;

export class StreamApply {
  private savepoints: number[] = [];
  /** relations whose rows the replica matches by whole rows (identity full or nothing), by id */
  private readonly keyless = new Map<number, string>();
  private dead: string | null = null;
  /** the COMMIT was sent: if it failed, whether it took effect is for the replica's state to say */
  private commitSent = false;

  private constructor(
    readonly xid: number,
    private readonly client: Client,
    private readonly applier: Applier,
    private readonly onGiveUp: GiveUp,
  ) {}

  /** Opens the replica transaction for top-level transaction `xid` (null if the replica cannot be reached). */
  static async open(
    replicaUrl: string,
    xid: number,
    opts: { maxBatchBytes?: number; maxInsertRows?: number },
    onGiveUp: GiveUp,
  ): Promise<StreamApply | null> {
    let client: Client;
    try {
      client = await connectReplica(replicaUrl, 'pgferry-stream-apply');
    } catch (e) {
      onGiveUp(`cannot open a second replica connection: ${describeError(e)}`);
      return null;
    }
    try {
      // durable only through the applier that reports this source (adoptCommit), once flushed
      await client.query(`SET synchronous_commit TO off; SET lock_timeout = ${LOCK_TIMEOUT_MS}`);
      const applier = new Applier(
        client,
        parseLsn('0/0'),
        {
          maxGroupTransactions: Number.MAX_SAFE_INTEGER,
          maxGroupDelayMs: Number.MAX_SAFE_INTEGER,
          asyncCommit: true,
          ...opts,
        },
        () => undefined,
      );
      const s = new StreamApply(xid, client, applier, onGiveUp);
      // the commit LSN is not known yet: nothing is skipped here (the caller checks it at the commit)
      await applier.apply([{ k: 'B', commitLsn: '0/0', xid }]);
      return s;
    } catch (e) {
      await closeQuietly(client);
      onGiveUp(`cannot begin the replica transaction: ${describeError(e)}`);
      return null;
    }
  }

  /** false once this path gave up (the spool is the way then) */
  get alive(): boolean {
    return this.dead === null;
  }

  async relation(info: RelationInfo): Promise<void> {
    // the primary's DDL capture table: a schema change goes the spool's way
    if (info.schema === DDL_SCHEMA && info.name === DDL_TABLE)
      return this.giveUp('the transaction changes the schema');
    // inserts into such a table are fine; its updates and deletes (matched by whole rows) are not
    if (info.replicaIdentity === 'full' || info.replicaIdentity === 'nothing')
      this.keyless.set(info.relid, `${info.schema}.${info.name}`);
    else this.keyless.delete(info.relid);
    await this.guard(() => this.applier.setRelation(info));
  }

  async changes(subxid: number, items: Change[]): Promise<void> {
    for (const c of items) {
      // a TRUNCATE's lock would stop snapshots of the replica until the commit: the spool's way
      if (c.k === 'T') return this.giveUp('the transaction truncates a table');
      // matched by whole rows, the replica could lock another of several equal rows than the primary did,
      // and wait for a later transaction's lock: the spool's way
      if (c.k === 'U' || c.k === 'D') {
        const table = this.keyless.get(c.r);
        if (table) return this.giveUp(`table ${table} has no usable key`);
      }
    }
    await this.guard(async () => {
      if (subxid !== this.xid && !this.savepoints.includes(subxid)) {
        if (this.savepoints.length >= MAX_SAVEPOINTS) {
          await this.giveUp(`more than ${MAX_SAVEPOINTS} subtransactions`);
          return;
        }
        this.applier.statement(`SAVEPOINT ${savepointName(subxid)}`);
        this.savepoints.push(subxid);
      }
      await this.applier.apply(items);
    });
  }

  /** Subtransaction `subxid` rolled back on the primary. */
  async rollbackSubtransaction(subxid: number): Promise<void> {
    const at = this.savepoints.indexOf(subxid);
    if (at < 0) return;
    await this.guard(async () => {
      this.applier.statement(`ROLLBACK TO SAVEPOINT ${savepointName(subxid)}`);
      this.savepoints = this.savepoints.slice(0, at);
      await this.applier.flush();
    });
  }

  /**
   * Commits the replica transaction as the source's commit ending at `endLsn`; null if this path gave up
   * or the commit failed (the caller replays the spool then).
   */
  async commit(endLsn: string, commitTime: string): Promise<HandOff | null> {
    let out: HandOff | null = null;
    await this.guard(async () => {
      await this.applier.apply([{ k: 'C', endLsn, commitTime }]);
      this.commitSent = true;
      out = await this.applier.commitForHandOff();
      this.applier.close();
      await closeQuietly(this.client);
    });
    return out;
  }

  /**
   * Whether a failed commit may have taken effect anyway (the connection broke after the COMMIT was
   * sent); `backendPid` is the replica backend that ran it.
   */
  get commitUncertain(): boolean {
    return this.commitSent && this.dead !== null;
  }

  get backendPid(): number {
    return (this.client as unknown as { processID: number }).processID;
  }

  /** Rolls back whatever was applied here and closes the connection. */
  async discard(): Promise<void> {
    this.dead ??= 'discarded';
    this.applier.close();
    await closeQuietly(this.client);
  }

  private async giveUp(reason: string): Promise<void> {
    if (this.dead !== null) return;
    this.dead = reason;
    this.onGiveUp(reason);
    await this.discard();
  }

  private async guard(fn: () => Promise<void>): Promise<void> {
    if (this.dead !== null) return;
    try {
      await fn();
    } catch (e) {
      await this.giveUp(describeError(e));
    }
  }
}
