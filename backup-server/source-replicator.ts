/**
 * One source on the backup server: the link to its agent (one at a time; a new login replaces a stale one),
 * the initial copy, the applier, sequence requests, and the live figures status and metrics read.
 */
import { randomUUID } from 'node:crypto';
import type { Client } from 'pg';
import type { SourceSettings } from '../shared/config/server-config';
import { describeError, isPgferryError, PgferryError } from '../shared/errors';
import type { Logger } from '../shared/log';
import { formatLsn, type Lsn, parseLsn } from '../shared/lsn';
import { decodeChanges } from '../shared/protocol/change-codec';
import { WAL_POSITION } from './replica/apply-statements';
import { StreamApply } from './replica/stream-apply';
import { TransactionSpool } from './replica/transaction-spool';
import type { FramedConnection } from '../shared/protocol/connection';
import type { Frame } from '../shared/protocol/frame';
import type { AgentMessage, SchemaReport, ServerMessage } from '../shared/protocol/messages';
import { Applier, type ApplierOptions } from './replica/applier';
import { connectReplica, databaseExists, recoverSwap, withAdmin } from './replica/database';
import { DEFAULT_SYNC_OPTIONS, InitialSync, type InitialSyncOptions } from './replica/initial-sync';
import { migrateMetadata, type ReplicaState, readReplicaState, setPaused } from './replica/metadata';
import { SCHEMA_HASH_SQL } from '../shared/schema-hash';
import { closeQuietly } from '../shared/pg-close';

type Conn = FramedConnection<AgentMessage, ServerMessage>;

/** frames of an initial copy read ahead of the one being applied, in bytes */
const SYNC_READ_AHEAD_BYTES = 1024 * 1024;

export interface SourceStatus {
  source: string;
  connected: boolean;
  remoteAddress: string | null;
  agentVersion: string | null;
  connectedAt: string | null;
  lastMessageAt: string | null;
  lastHeartbeatAt: string | null;
  closedByAgent: boolean;
  phase: 'idle' | 'initial-copy' | 'streaming';
  appliedLsn: string | null;
  primaryWalLsn: string | null;
  lagBytes: number | null;
  lastCommitTime: string | null;
  lastAppliedAt: string | null;
  retainedWalBytes: number | null;
  transactionsApplied: number;
  rowsApplied: number;
  /** transactions still running on the primary, streamed so far and kept on disk until they commit */
  spool: { transactions: number; bytes: number };
  initialCopy: { tables: number; bytes: number; startedAt: string } | null;
  lastError: string | null;
  /** replication stopped after a change the replica could not apply; `pgferry resync` is the way out */
  paused: { at: string; error: string } | null;
  /** the last schema comparison (primary's hash from the agent, replica's computed at the same LSN) */
  schema: {
    primaryHash: string;
    replicaHash: string;
    atLsn: string;
    checkedAt: string;
    equal: boolean;
  } | null;
}

export class SourceReplicator {
  private conn: Conn | null = null;
  private detached: Promise<void> = Promise.resolve();
  private client: Client | null = null;
  private applier: Applier | null = null;
  private sync: InitialSync | null = null;
  /** the link's read-ahead outside an initial copy */
  private streamingReadAhead = 0;
  private readonly pendingSequenceRequests = new Map<string, () => void>();
  private readonly st: SourceStatus;
  /** when the last message arrived (ms; st.lastMessageAt is formatted from it when status is read) */
  private lastMessageAtMs: number | null = null;
  private appVersion: string | null = null;
  /** transactions the primary streams while they run, kept until their commit */
  private readonly spool: TransactionSpool;
  /** one of them applied while it streams, in a replica transaction of its own (null: none) */
  private streamApply: StreamApply | null = null;

  constructor(
    readonly settings: SourceSettings,
    private readonly adminUrl: string,
    private readonly applierOptions: ApplierOptions & {
      /** apply a streamed transaction as it arrives (stream-apply.ts), not only at its commit */
      applyWhileStreaming?: boolean;
    },
    private readonly log: Logger,
    private readonly onEvent: (
      event: 'message' | 'heartbeat' | 'close' | 'disconnect',
      source: string,
    ) => void = () => undefined,
    private readonly syncOptions: InitialSyncOptions = DEFAULT_SYNC_OPTIONS,
  ) {
    this.spool = new TransactionSpool(settings.spoolDir);
    this.st = {
      source: settings.name,
      connected: false,
      remoteAddress: null,
      agentVersion: null,
      connectedAt: null,
      lastMessageAt: null,
      lastHeartbeatAt: null,
      closedByAgent: false,
      phase: 'idle',
      appliedLsn: null,
      primaryWalLsn: null,
      lagBytes: null,
      lastCommitTime: null,
      lastAppliedAt: null,
      retainedWalBytes: null,
      transactionsApplied: 0,
      rowsApplied: 0,
      spool: { transactions: 0, bytes: 0 },
      initialCopy: null,
      lastError: null,
      paused: null,
      schema: null,
    };
  }

  status(): SourceStatus {
    if (this.lastMessageAtMs !== null) this.st.lastMessageAt = new Date(this.lastMessageAtMs).toISOString();
    this.st.spool = { transactions: this.spool.size, bytes: this.spool.bytes };
    const a = this.applier;
    if (a) {
      this.st.transactionsApplied = a.stats.transactionsApplied;
      this.st.rowsApplied = a.stats.rowsApplied;
      if (a.stats.lastCommitTime) this.st.lastCommitTime = a.stats.lastCommitTime.toISOString();
    }
    if (this.sync)
      this.st.initialCopy = {
        tables: this.sync.tables,
        bytes: this.sync.bytes,
        startedAt: new Date(this.sync.startedAt).toISOString(),
      };
    if (this.st.primaryWalLsn && this.st.appliedLsn) {
      const d = parseLsn(this.st.primaryWalLsn) - parseLsn(this.st.appliedLsn);
      this.st.lagBytes = d > 0n ? Number(d) : 0;
    }
    return { ...this.st };
  }

  get isConnected(): boolean {
    return this.conn !== null && !this.conn.isClosed;
  }

  /** Takes over the link for this source; an older connection is closed first. */
  async attach(conn: Conn, remoteAddress: string, agentVersion: string): Promise<void> {
    if (this.conn) {
      this.log.warn('a new agent connection replaces the current one', {
        source: this.settings.name,
        remoteAddress,
      });
      this.conn.destroy(new Error('replaced by a new connection'));
    }
    await this.detached;
    let release!: () => void;
    this.detached = new Promise((r) => {
      release = r;
    });
    this.conn = conn;
    Object.assign(this.st, {
      connected: true,
      remoteAddress,
      agentVersion,
      connectedAt: new Date().toISOString(),
      closedByAgent: false,
      lastError: null,
    });
    conn.on('handlerError', (e: unknown) => {
      this.st.lastError = describeError(e);
      if (isPgferryError(e, 'APPLY_FAILED')) void this.pause(describeError(e));
      this.log.error('replication stopped for this connection', {
        source: this.settings.name,
        error: describeError(e),
        code: e instanceof PgferryError ? e.code : undefined,
      });
      void conn
        .end({
          tag: 'error',
          code: e instanceof PgferryError ? e.code : 'INTERNAL',
          message: describeError(e),
        })
        .catch(() => undefined);
    });
    conn.on('protocolError', (e: unknown) =>
      this.log.warn('protocol error from agent', { source: this.settings.name, error: describeError(e) }),
    );
    conn.on('arrived', (m: AgentMessage) => {
      this.lastMessageAtMs = Date.now();
      this.onEvent('message', this.settings.name);
      if (m.tag === 'heartbeat') {
        this.st.lastHeartbeatAt = new Date(this.lastMessageAtMs).toISOString();
        this.onEvent('heartbeat', this.settings.name);
      } else if (m.tag === 'close') {
        this.st.closedByAgent = true;
        this.onEvent('close', this.settings.name);
      }
    });
    conn.onFrames((f) => this.handle(conn, f));
    void conn.closed.then(async () => {
      try {
        await this.cleanup();
      } finally {
        if (this.conn === conn) {
          this.conn = null;
          this.st.connected = false;
        }
        this.onEvent('disconnect', this.settings.name);
        this.log.info('agent disconnected', { source: this.settings.name, remoteAddress });
        release();
      }
    });
  }

  private async cleanup(): Promise<void> {
    for (const done of this.pendingSequenceRequests.values()) done();
    this.pendingSequenceRequests.clear();
    await this.sync?.abort();
    this.sync = null;
    if (this.st.phase === 'initial-copy') this.st.phase = 'idle';
    await this.streamApply?.discard();
    this.streamApply = null;
    await this.applier?.abort().catch(() => undefined);
    this.applier = null;
    await closeQuietly(this.client);
    this.client = null;
    // the primary streams every open transaction again from its start after a reconnect
    await this.spool.reset();
  }

  /** The complete replica's state (null when there is none). */
  private async replicaState(): Promise<ReplicaState | null> {
    await recoverSwap(this.adminUrl, this.settings.replicaDatabase);
    const exists = await withAdmin(this.adminUrl, (a) => databaseExists(a, this.settings.replicaDatabase));
    if (!exists) return null;
    const c = await connectReplica(this.settings.replicaUrl);
    try {
      const st = await readReplicaState(c);
      if (!st?.syncCompletedAt) return null;
      this.st.appliedLsn = st.appliedLsn;
      this.st.paused = st.pausedAt ? { at: st.pausedAt.toISOString(), error: st.pausedError ?? '' } : null;
      return st;
    } finally {
      await closeQuietly(c);
    }
  }

  /** Stops applying this source until a deliberate resync: never diverge silently, never loop on the error. */
  private async pause(error: string): Promise<void> {
    this.st.paused = { at: new Date().toISOString(), error };
    this.log.error(
      `replication of source ${this.settings.name} is PAUSED: a change could not be applied on the replica`,
      {
        source: this.settings.name,
        error,
        whatToDo: `fix the cause, then run: pgferry resync ${this.settings.name} --config <server.yaml>`,
      },
    );
    try {
      const c = await connectReplica(this.settings.replicaUrl);
      try {
        await setPaused(c, error);
      } finally {
        await closeQuietly(c);
      }
    } catch (e) {
      this.log.error('could not record the pause in the replica', {
        source: this.settings.name,
        error: describeError(e),
      });
    }
  }

  /** Compares the primary's schema hash (taken at walLsn) with the replica's once the replica got there. */
  private pendingSchema: SchemaReport | null = null;
  private readonly schemaWaiters: (() => void)[] = [];

  private async checkSchema(): Promise<void> {
    const p = this.pendingSchema;
    const a = this.applier;
    const c = this.client;
    if (!p || !a || !c || a.inTransaction || a.appliedLsn < parseLsn(p.walLsn)) return;
    this.pendingSchema = null;
    const r = await c.query<{ hash: string }>(SCHEMA_HASH_SQL);
    const replicaHash = r.rows[0].hash;
    const equal = replicaHash === p.hash;
    const was = this.st.schema;
    this.st.schema = {
      primaryHash: p.hash,
      replicaHash,
      atLsn: p.walLsn,
      checkedAt: new Date().toISOString(),
      equal,
    };
    if (equal) {
      await c.query('UPDATE pgferry.state SET schema_hash = $1 WHERE id = 1', [replicaHash]);
    } else if (!was || was.equal || was.replicaHash !== replicaHash) {
      this.log.error(
        `schema drift on source ${this.settings.name}: the replica's tables differ from the primary's`,
        {
          source: this.settings.name,
          primaryHash: p.hash,
          replicaHash,
          atLsn: p.walLsn,
          whatToDo: `pgferry resync ${this.settings.name} --config <server.yaml>`,
        },
      );
    }
    for (const w of this.schemaWaiters.splice(0)) w();
  }

  private async openApplier(conn: Conn, applied: Lsn): Promise<void> {
    this.client = await connectReplica(this.settings.replicaUrl, 'pgferry-apply');
    await migrateMetadata(this.client);
    // commits are reported durable only once flushed (see ApplierOptions.asyncCommit)
    await this.client.query('SET synchronous_commit TO off');
    this.applier = new Applier(this.client, applied, { ...this.applierOptions, asyncCommit: true }, (lsn) => {
      const text = formatLsn(lsn);
      this.st.appliedLsn = text;
      this.st.lastAppliedAt = new Date().toISOString();
      conn.send({ tag: 'ack', lsn: text }).catch(() => undefined);
    });
    this.st.appliedLsn = formatLsn(applied);
    this.st.phase = 'streaming';
    await this.client.query('UPDATE pgferry.state SET app_version = $1 WHERE id = 1', [this.appVersion]);
  }

  /**
   * The replica transaction applying streamed transaction `xid` as it arrives, opened at its first frame
   * (`first`) if no other transaction has one; null when it goes the spool's way only. Commits this
   * applier's open group first: that transaction must never wait for the group's locks.
   */
  private async streamApplyFor(a: Applier, xid: number, first: boolean): Promise<StreamApply | null> {
    if (this.applierOptions.applyWhileStreaming === false) return null;
    let s = this.streamApply;
    if (s && s.xid !== xid && !s.alive && first) {
      this.streamApply = null;
      s = null;
    }
    if (s ? s.xid !== xid || !s.alive : !first) return null;
    // the early transaction must never wait for a lock of the open group
    await a.commitGroup();
    if (s) return s;
    s = await StreamApply.open(
      this.settings.replicaUrl,
      xid,
      {
        maxBatchBytes: this.applierOptions.maxBatchBytes,
        maxInsertRows: this.applierOptions.maxInsertRows,
      },
      (reason) =>
        this.log.info(
          'a large transaction is spooled and applied at its commit instead of while it streams',
          {
            source: this.settings.name,
            xid,
            reason,
          },
        ),
    );
    this.streamApply = s;
    return s;
  }

  /**
   * Commits a streamed transaction that was applied while it streamed, after everything committed before
   * it; false if there is none (or it gave up, or was applied already): the spool is replayed then.
   */
  private async commitStreamApplied(
    a: Applier,
    m: Extract<AgentMessage, { tag: 'streamCommit' }>,
  ): Promise<boolean> {
    const s = this.streamApply?.xid === m.xid ? this.streamApply : null;
    if (!s) return false;
    this.streamApply = null;
    await a.commitGroup();
    // applied before (a reconnect re-streamed it): the spool's replay skips it by its commit LSN
    const h = parseLsn(m.commitLsn) >= a.appliedLsn ? await s.commit(m.endLsn, m.commitTime) : null;
    if (!h) {
      await s.discard();
      const end = parseLsn(m.endLsn);
      // a commit whose answer was lost may have committed: replaying the spool would apply it twice
      if (!s.commitUncertain || (await this.committedElsewhere(s.backendPid)) < end) return false;
      const [[inserted, flushed]] = (
        await this.need(this.client, 'the replica connection').query<[string, string]>({
          text: WAL_POSITION.text,
          rowMode: 'array',
        })
      ).rows;
      a.adoptCommit({
        end,
        wal: { inserted: parseLsn(inserted), flushed: parseLsn(flushed) },
        transactions: 1,
        rows: 0,
        lastCommitTime: null,
      });
    } else a.adoptCommit(h);
    await this.spool.discard(m.xid);
    return true;
  }

  /**
   * The replica's applied position once backend `pid` (whose COMMIT's answer was lost) has ended: ended, its
   * transaction either committed (the position covers it) or did not.
   */
  private async committedElsewhere(pid: number): Promise<Lsn> {
    const c = this.need(this.client, 'the replica connection');
    for (let i = 0; ; i++) {
      const r = await c.query('SELECT 1 FROM pg_stat_activity WHERE pid = $1', [pid]);
      if (r.rowCount === 0) break;
      if (i === 100) await c.query('SELECT pg_terminate_backend($1)', [pid]);
      if (i > 200)
        throw new PgferryError(
          'REPLICA_UNAVAILABLE',
          `replica backend ${pid} does not end; the agent reconnects and the transaction is streamed again`,
        );
      await new Promise((r) => setTimeout(r, 50));
    }
    const st = await readReplicaState(c);
    return parseLsn(st?.appliedLsn ?? '0/0');
  }

  private need<T>(v: T | null, what: string): T {
    if (v === null) throw new PgferryError('PROTOCOL_ERROR', `${what} arrived before the stream was set up`);
    return v;
  }

  private async handle(conn: Conn, f: Frame<AgentMessage>): Promise<void> {
    await this.handleMessage(conn, f);
    // after every frame (heartbeats included): a complete group is committed once no input waits
    const a = this.applier;
    if (a?.shouldCommit(conn.pendingFrames > 0)) {
      await a.commitGroup();
      if (this.pendingSchema) await this.checkSchema();
    }
  }

  private async handleMessage(conn: Conn, f: Frame<AgentMessage>): Promise<void> {
    const m = f.header;
    this.lastMessageAtMs = Date.now();
    switch (m.tag) {
      case 'start': {
        await this.cleanup();
        this.appVersion = m.appVersion;
        const state = await this.replicaState();
        this.log.info('agent connected', {
          source: this.settings.name,
          systemIdentifier: m.systemIdentifier,
          replica: state ? `${state.systemIdentifier} at ${state.appliedLsn}` : 'none',
          slot: m.slot.exists ? `exists, confirmed ${m.slot.confirmedFlushLsn}` : 'missing',
        });
        if (state?.resyncRequestedAt) {
          this.log.warn('a full resync was requested: the agent makes a fresh copy', {
            source: this.settings.name,
          });
          await conn.send({ tag: 'welcome', replica: null, resync: true });
          return;
        }
        if (state?.pausedAt) {
          const err = new PgferryError(
            'SOURCE_PAUSED',
            `replication of ${this.settings.name} is paused since ${state.pausedAt.toISOString()}: ${state.pausedError}`,
          );
          await conn.end({ tag: 'error', code: err.code, message: `${err.message}; ${err.hint}` });
          return;
        }
        if (state && state.systemIdentifier === m.systemIdentifier)
          await this.openApplier(conn, parseLsn(state.appliedLsn));
        const replica = state
          ? { systemIdentifier: state.systemIdentifier, syncId: state.syncId, appliedLsn: state.appliedLsn }
          : null;
        await conn.send({ tag: 'welcome', replica });
        return;
      }
      case 'syncBegin': {
        await this.cleanup();
        this.st.phase = 'initial-copy';
        // the copy's bulk frames are read only a little ahead: more would outlive young-generation GCs
        // and cost a major GC every few MB (server CPU 1.5-2.3 s -> 0.7-1.0 s per 570 MB copy)
        this.streamingReadAhead = conn.queueBudgetBytes;
        conn.queueBudgetBytes = SYNC_READ_AHEAD_BYTES;
        this.sync = new InitialSync(
          { source: this.settings.name, adminUrl: this.adminUrl, database: this.settings.replicaDatabase },
          this.log,
          this.syncOptions,
        );
        await this.sync.begin(m);
        return;
      }
      case 'syncTable':
        return this.need(this.sync, 'syncTable').startTable(m.table, m.format, m.stream, m.parts);
      case 'copyData':
        await this.need(this.sync, 'copyData').data(f.parts ?? (f.body ? [f.body] : []), m.stream);
        return;
      case 'syncTableEnd':
        return this.need(this.sync, 'syncTableEnd').endTable(m.stream, m.rows);
      case 'syncEnd': {
        this.st.paused = null;
        const lsn = await this.need(this.sync, 'syncEnd').finish(m.schemaPost, m.sequences);
        this.sync = null;
        conn.queueBudgetBytes = this.streamingReadAhead;
        this.st.initialCopy = null;
        await this.openApplier(conn, lsn);
        await conn.send({ tag: 'ack', lsn: formatLsn(lsn) });
        return;
      }
      case 'relation':
        return this.need(this.applier, 'relation').setRelation(m.relation);
      case 'changes': {
        const a = this.need(this.applier, 'changes');
        const items = f.body ? decodeChanges(f.body) : [];
        if (items.length !== m.count) {
          throw new PgferryError(
            'PROTOCOL_ERROR',
            `change batch holds ${items.length} changes, its header says ${m.count}`,
          );
        }
        await a.apply(items);
        return;
      }
      case 'streamChanges': {
        const a = this.need(this.applier, 'streamChanges');
        const body = f.body;
        if (!body) throw new PgferryError('PROTOCOL_ERROR', 'streamChanges without a body');
        const first = this.spool.bytesOf(m.xid) === 0;
        await this.spool.append(m, body);
        const s = await this.streamApplyFor(a, m.xid, first);
        if (s) {
          const items = decodeChanges(body);
          if (items.length === m.count) await s.changes(m.subxid, items);
          else await s.discard(); // the spool's replay reports the mismatch at the commit
        }
        return;
      }
      case 'streamRelation': {
        const a = this.need(this.applier, 'streamRelation');
        const first = this.spool.bytesOf(m.xid) === 0;
        await this.spool.append(m, null);
        await (await this.streamApplyFor(a, m.xid, first))?.relation(m.relation);
        return;
      }
      case 'streamAbort': {
        const s = this.streamApply?.xid === m.xid ? this.streamApply : null;
        if (s && m.subxid === m.xid) {
          this.streamApply = null;
          await s.discard();
        } else if (s) await s.rollbackSubtransaction(m.subxid);
        return this.spool.abort(m.xid, m.subxid);
      }
      case 'streamCommit': {
        // applied now, in commit order, exactly as if it had come whole after its commit
        const a = this.need(this.applier, 'streamCommit');
        const spooled = this.spool.bytesOf(m.xid);
        const started = Date.now();
        const applied = (message: string) =>
          this.log.info(message, {
            source: this.settings.name,
            xid: m.xid,
            commitLsn: m.commitLsn,
            spooledMegabytes: Math.round(spooled / 1e5) / 10,
            seconds: (Date.now() - started) / 1000,
          });
        if (await this.commitStreamApplied(a, m)) {
          applied('applied a large transaction while it ran on the primary');
          return;
        }
        await a.apply([{ k: 'B', commitLsn: m.commitLsn, xid: m.xid }]);
        for await (const r of this.spool.replay(m.xid)) {
          if (r.header.tag === 'streamRelation') {
            await a.setRelation(r.header.relation);
            continue;
          }
          const items = r.body ? decodeChanges(r.body) : [];
          if (items.length !== r.header.count)
            throw new PgferryError(
              'PROTOCOL_ERROR',
              `streamed batch holds ${items.length} changes, its header said ${r.header.count}`,
            );
          await a.apply(items);
        }
        await a.apply([{ k: 'C', endLsn: m.endLsn, commitTime: m.commitTime }]);
        applied('applied a large transaction streamed while it ran on the primary');
        return;
      }
      case 'sequences': {
        const a = this.need(this.applier, 'sequences');
        await a.applySequences(m.sequences, a.appliedLsn);
        if (a.shouldCommit(conn.pendingFrames > 0)) await a.commitGroup();
        if (m.schema) {
          this.pendingSchema = m.schema;
          await this.checkSchema();
        }
        if (m.requestId) this.pendingSequenceRequests.get(m.requestId)?.();
        return;
      }
      case 'schema': {
        this.pendingSchema = m.schema;
        await this.checkSchema();
        return;
      }
      case 'advance': {
        const a = this.need(this.applier, 'advance');
        await a.advance(parseLsn(m.lsn));
        if (this.pendingSchema) await this.checkSchema();
        return;
      }
      case 'heartbeat': {
        this.st.lastHeartbeatAt = new Date().toISOString();
        this.st.primaryWalLsn = m.walLsn;
        this.st.retainedWalBytes = m.retainedWalBytes;
        this.st.closedByAgent = false;
        if (this.client && this.applier && !this.applier.inTransaction) {
          const r = await this.client.query(
            'SELECT resync_requested_at IS NOT NULL AS asked FROM pgferry.state WHERE id = 1',
          );
          if (r.rows[0]?.asked) {
            this.log.warn(
              'a full resync was requested: closing the link so the agent reconnects and copies afresh',
              { source: this.settings.name },
            );
            await conn.end({ tag: 'error', code: 'SOURCE_PAUSED', message: 'resync requested; reconnect' });
          }
        }
        return;
      }
      case 'close': {
        this.st.closedByAgent = true;
        this.log.info('agent announced a clean stop', { source: this.settings.name, reason: m.reason });
        return;
      }
      default:
        throw new PgferryError(
          'PROTOCOL_ERROR',
          `unexpected message "${(m as { tag: string }).tag}" on an established link`,
        );
    }
  }

  /** Asks the agent for fresh sequence values; resolves true once applied, false if the agent is away or slow. */
  async refreshSequences(timeoutMs = 10_000): Promise<boolean> {
    return (await this.refreshBeforeSnapshot(timeoutMs)).fresh;
  }

  /**
   * Before a snapshot: fresh sequence values from the agent, and the primary's schema hash compared with
   * the replica's once the replica reached the position the hash was read at. `schema` is null when the
   * comparison could not be made in time (agent away or replica behind).
   */
  async refreshBeforeSnapshot(
    timeoutMs = 10_000,
  ): Promise<{ fresh: boolean; schema: SourceStatus['schema'] }> {
    const conn = this.conn;
    if (!conn || conn.isClosed || !this.applier) return { fresh: false, schema: null };
    const deadline = Date.now() + timeoutMs;
    const requestId = randomUUID();
    const answered = new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => {
        this.pendingSequenceRequests.delete(requestId);
        resolve(false);
      }, timeoutMs);
      this.pendingSequenceRequests.set(requestId, () => {
        clearTimeout(timer);
        this.pendingSequenceRequests.delete(requestId);
        resolve(!conn.isClosed);
      });
    });
    const before = this.st.schema?.checkedAt;
    await conn.send({ tag: 'requestSequences', requestId }).catch(() => undefined);
    const fresh = await answered;
    if (!fresh) return { fresh, schema: null };
    if (this.pendingSchema) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.max(0, deadline - Date.now()));
        this.schemaWaiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    const schema = this.st.schema && this.st.schema.checkedAt !== before ? this.st.schema : null;
    return { fresh, schema };
  }

  async stop(): Promise<void> {
    const conn = this.conn;
    if (conn) {
      conn.destroy(new Error('server stopping'));
      await this.detached;
    }
  }
}
