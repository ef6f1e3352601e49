/**
 * The agent: one session at a time with the backup server (connect, log in, decide between resuming and
 * a full copy, stream), reconnecting with backoff after any failure; beside it a watcher that sends
 * heartbeats and sequences, keeps replica identities usable, and gives up the slot when it retains more
 * WAL than allowed (so the primary's disk never fills).
 */
import type { Client } from 'pg';
import type { AgentConfig } from '../shared/config/agent-config';
import { describeError, isPgferryError, PgferryError } from '../shared/errors';
import type { Logger } from '../shared/log';
import { formatLsn, parseLsn } from '../shared/lsn';
import { ChangeBatchEncoder } from '../shared/protocol/change-codec';
import type { AgentLinkStatus } from '../shared/status/report';
import { type AgentMessage, commitTimeMs, type SchemaReport } from '../shared/protocol/messages';
import { type ChangeEvent, ChangeStream, type StreamEvent, streamsInProgress } from './change-stream';
import { holdDecision } from './batch-hold';
import { type DdlMode, installDdlCapture, schemaHash } from './ddl-capture';
import { closeQuietly } from '../shared/pg-close';
import { runInitialCopy } from './initial-copy';
import { type AgentConn, connectToServer } from './link';
import {
  connectPrimary,
  dropSlot,
  ensurePublication,
  ensureReplicaIdentities,
  primaryClientConfig,
  primaryIdentity,
  readAppVersion,
  readSequences,
  slotInfo,
} from './primary';

const BATCH_ITEMS = 2000;
const BATCH_BYTES = 512 * 1024;

export interface AgentStatus extends AgentLinkStatus {
  phase: 'starting' | 'connecting' | 'initial-copy' | 'streaming' | 'waiting';
  ddlMode: DdlMode | null;
}

export class Agent {
  private stopping = false;
  private stopWake: () => void = () => undefined;
  private conn: AgentConn | null = null;
  private stream: ChangeStream | null = null;
  private monitor: Client | null = null;
  /** the end of the last turn on the monitor connection (see withMonitor) */
  private monitorTurn: Promise<unknown> = Promise.resolve();
  private watchTimer: NodeJS.Timeout | null = null;
  private heartbeatTimer: NodeJS.Timeout | null = null;
  private sequencesTimer: NodeJS.Timeout | null = null;
  private schemaTimer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  readonly st: AgentStatus;

  constructor(
    private readonly cfg: AgentConfig,
    private readonly log: Logger,
  ) {
    this.st = {
      source: cfg.source.name,
      connected: false,
      phase: 'starting',
      slot: cfg.source.slot,
      slotExists: null,
      retainedWalBytes: null,
      maxRetainedWalBytes: cfg.maxRetainedWalBytes,
      confirmedLsn: null,
      currentWalLsn: null,
      slotDroppedAt: null,
      lastError: null,
      reconnects: 0,
      ddlMode: null,
    };
  }

  start(): void {
    this.running = this.loop();
    this.watchTimer = setInterval(() => void this.watch(), this.cfg.walCheckIntervalSeconds * 1000);
    this.heartbeatTimer = setInterval(() => void this.heartbeat(), this.cfg.heartbeat.intervalSeconds * 1000);
    this.sequencesTimer = setInterval(
      () => void this.sendSequences(null),
      this.cfg.sequences.intervalSeconds * 1000,
    );
    this.schemaTimer = setInterval(() => void this.sendSchema(), this.cfg.schemaCheck.intervalSeconds * 1000);
    void this.watch();
  }

  /** Clean stop: tells the server CLOSE, ends the stream; the slot keeps its position. */
  async stop(): Promise<void> {
    this.stopping = true;
    for (const t of [this.watchTimer, this.heartbeatTimer, this.sequencesTimer, this.schemaTimer])
      if (t) clearInterval(t);
    this.stopWake();
    const conn = this.conn;
    if (conn && !conn.isClosed) {
      await this.sendSequences(null).catch(() => undefined);
      await conn.send({ tag: 'close', reason: 'agent stopping' }).catch(() => undefined);
    }
    await this.stream?.stop();
    if (conn) await conn.end();
    await this.running?.catch(() => undefined);
    // a check that started before the timers stopped finishes first (else it would connect again)
    await this.monitorTurn;
    await closeQuietly(this.monitor);
    this.monitor = null;
  }

  private async sleep(ms: number): Promise<void> {
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, ms);
      this.stopWake = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }

  private async loop(): Promise<void> {
    let delay = this.cfg.reconnect.minDelayMs;
    while (!this.stopping) {
      const started = Date.now();
      try {
        await this.session();
      } catch (e) {
        this.st.lastError = describeError(e);
        if (!this.stopping) {
          this.log.warn('replication session ended; reconnecting', {
            code: isPgferryError(e) ? e.code : undefined,
            error: describeError(e),
            retryInMs: delay,
          });
        }
      } finally {
        this.st.connected = false;
        this.conn?.destroy();
        this.conn = null;
        await this.stream?.stop();
        this.stream = null;
      }
      if (this.stopping) break;
      this.st.phase = 'waiting';
      this.st.reconnects++;
      if (Date.now() - started > 60_000) delay = this.cfg.reconnect.minDelayMs;
      await this.sleep(delay);
      delay = Math.min(delay * 2, this.cfg.reconnect.maxDelayMs);
    }
  }

  /**
   * Runs `fn` with the monitor connection, one caller at a time: the WAL check, the sequence sync and the
   * schema report come from their own timers, and a query started while another runs is deprecated in pg
   * (refused from pg 9).
   */
  private withMonitor<T>(fn: (c: Client) => Promise<T>): Promise<T> {
    const run = this.monitorTurn.then(async () => fn(await this.getMonitor()));
    this.monitorTurn = run.catch(() => undefined);
    return run;
  }

  private async getMonitor(): Promise<Client> {
    if (!this.monitor) {
      const c = await connectPrimary(this.cfg.source.url, 'pgferry-agent-monitor');
      c.on('error', () => {
        if (this.monitor === c) this.monitor = null;
      });
      this.monitor = c;
    }
    return this.monitor;
  }

  private async session(): Promise<void> {
    this.st.phase = 'connecting';
    const primary = await connectPrimary(this.cfg.source.url, 'pgferry-agent-setup');
    let ident: Awaited<ReturnType<typeof primaryIdentity>>;
    let slot: Awaited<ReturnType<typeof slotInfo>>;
    let appVersion: string | null;
    try {
      ident = await primaryIdentity(primary);
      this.st.ddlMode = await installDdlCapture(primary, this.log);
      await ensureReplicaIdentities(primary, this.log);
      await ensurePublication(primary, this.cfg.source.publication, this.log);
      slot = await slotInfo(primary, this.cfg.source.slot);
      appVersion = await readAppVersion(primary, this.cfg.source, this.log);
    } finally {
      await closeQuietly(primary);
    }
    const conn = await connectToServer(this.cfg);
    this.conn = conn;
    this.st.connected = true;
    const slotUsable = slot.exists && slot.walStatus !== 'lost';
    await conn.send({
      tag: 'start',
      systemIdentifier: ident.systemIdentifier,
      pgMajor: ident.pgMajor,
      appVersion,
      slot: { exists: slotUsable, confirmedFlushLsn: slot.confirmedFlushLsn },
    });
    const welcome = (await conn.next(30_000)).header;
    if (welcome.tag === 'error')
      throw new PgferryError('PROTOCOL_ERROR', `the backup server refused the session: ${welcome.message}`);
    if (welcome.tag !== 'welcome')
      throw new PgferryError('PROTOCOL_ERROR', `expected welcome, got ${welcome.tag}`);
    const replica = welcome.replica;

    let reason: string | null = null;
    if (welcome.resync) reason = 'a full resync was requested (pgferry resync)';
    else if (!replica) reason = 'the backup server has no replica of this source yet';
    else if (replica.systemIdentifier !== ident.systemIdentifier)
      reason = `a new primary (system identifier ${ident.systemIdentifier}, the replica has ${replica.systemIdentifier})`;
    else if (!slotUsable)
      reason = slot.exists ? 'the slot lost required WAL' : 'the replication slot is missing';
    else if (slot.confirmedFlushLsn && parseLsn(slot.confirmedFlushLsn) > parseLsn(replica.appliedLsn) + 1n) {
      reason = `the replica (applied ${replica.appliedLsn}) is behind the slot (confirmed ${slot.confirmedFlushLsn}): it lost data`;
    }

    // frames from the server: acks (confirm the slot), sequence requests, errors
    let ackWaiter: ((lsn: string) => void) | null = null;
    let durable = replica?.appliedLsn ?? '0/0';
    conn.onFrames(async (f) => {
      const m = f.header;
      if (m.tag === 'ack') {
        durable = m.lsn;
        this.st.confirmedLsn = m.lsn;
        await this.stream?.confirm(m.lsn);
        ackWaiter?.(m.lsn);
      } else if (m.tag === 'requestSequences') {
        await this.sendSequences(m.requestId);
      } else if (m.tag === 'error') {
        this.log.error('the backup server reported an error', { code: m.code, error: m.message });
      }
    });
    const closed = conn.closed.then((e) => {
      throw new PgferryError(
        'CONNECTION_LOST',
        `the backup server closed the link${e ? `: ${e.message}` : ''}`,
      );
    });
    closed.catch(() => undefined);

    if (reason) {
      this.st.phase = 'initial-copy';
      this.log.warn('making a full initial copy', { reason });
      const acked = new Promise<string>((resolve) => {
        ackWaiter = resolve;
      });
      const r = await Promise.race([
        runInitialCopy(
          conn,
          {
            url: this.cfg.source.url,
            slot: this.cfg.source.slot,
            publication: this.cfg.source.publication,
            systemIdentifier: ident.systemIdentifier,
            pgMajor: ident.pgMajor,
            pgBinDir: this.cfg.initialSync.pgBinDir,
            chunkBytes: this.cfg.initialSync.copyChunkBytes,
          },
          this.log,
        ),
        closed,
      ]);
      durable = await Promise.race([acked, closed]);
      ackWaiter = null;
      this.log.info('initial copy applied by the backup server', {
        consistentLsn: r.consistentLsn,
        tables: r.tables,
        megabytes: Math.round(r.bytes / 1e5) / 10,
        seconds: r.seconds,
      });
      this.st.slotDroppedAt = null;
    }
    await this.streamChanges(conn, durable, ident.pgMajor, closed);
  }

  private async streamChanges(
    conn: AgentConn,
    from: string,
    pgMajor: number,
    closed: Promise<never>,
  ): Promise<void> {
    this.st.phase = 'streaming';
    // large transactions go to the backup server while they run (spooled there until they commit), not
    // into spill files on the primary's disk; both sides must speak it, and the primary must be 14 or later
    const streamInProgress = streamsInProgress(
      this.cfg.streamLargeTransactions,
      conn.protocolVersion,
      pgMajor,
    );
    const stream = new ChangeStream(
      primaryClientConfig(this.cfg.source.url, 'pgferry-agent-stream'),
      this.cfg.source.slot,
      this.cfg.source.publication,
      { streamInProgress, readPauseMs: this.cfg.maxBatchDelayMs },
    );
    this.stream = stream;
    // changes are encoded as they arrive: the batch's exact size is known, and no Change outlives its message
    const batch = new ChangeBatchEncoder();
    let batchStartedAt = 0;
    /** the primary's commit time (ms) of the first transaction in the batch, null before its commit */
    let batchCommittedAt: number | null = null;
    let batchesSent = 0;
    let inTxn = false;
    /** the in-progress transaction whose stream block is being read (null: committed transactions) */
    let streamXid: number | null = null;
    /** what the batch holds: committed changes (batchXid null) or those of one (sub)transaction in progress */
    let batchXid: number | null = null;
    let batchSubxid = 0;
    /** end of the last commit forwarded (text; parsed only when a keepalive needs it) */
    let lastForwarded = from;
    let lastAdvance = 0;
    // committed transactions wait in the batch up to maxBatchDelayMs for more to join them: every batch is
    // a frame, and on the backup server a replica transaction with its bookkeeping (see agent-config.ts)
    const holdMs = this.cfg.maxBatchDelayMs;
    /** sends a batch of committed transactions that nothing joined in time */
    let holdTimer: NodeJS.Timeout | null = null;
    const flush = (): Promise<void> | undefined => {
      if (holdTimer) {
        clearTimeout(holdTimer);
        holdTimer = null;
      }
      batchCommittedAt = null;
      if (batch.count === 0) return undefined;
      batchesSent++;
      const count = batch.count;
      if (batchXid === null) return conn.send({ tag: 'changes', count }, batch.take());
      return conn.send({ tag: 'streamChanges', xid: batchXid, subxid: batchSubxid, count }, batch.take());
    };
    /** flush, then send `m` (in that order) */
    const flushThen = (m: AgentMessage): Promise<void> => {
      const sent = flush();
      return sent ? sent.then(() => conn.send(m)) : conn.send(m);
    };
    /** a change or layout inside a stream block, made by (sub)transaction `xid` */
    const streamed = (top: number, xid: number, ev: ChangeEvent): Promise<void> | undefined => {
      if (ev.k === 'R')
        return flushThen({ tag: 'streamRelation', xid: top, subxid: xid, relation: ev.relation });
      // one batch holds one subtransaction's changes: the server can then forget exactly one's
      const sent = batch.count > 0 && (batchXid !== top || batchSubxid !== xid) ? flush() : undefined;
      batchXid = top;
      batchSubxid = xid;
      batch.add(ev);
      if (batch.count >= BATCH_ITEMS || batch.byteLength >= BATCH_BYTES) {
        const next = flush();
        return sent && next ? sent.then(() => next) : (sent ?? next);
      }
      return sent;
    };
    this.log.info('streaming changes', { from, streamInProgress });
    const run = stream.run(from, {
      // not async: most changes only join the batch, and a promise per change costs more than the change
      onEvent: (c: StreamEvent, more: boolean): Promise<void> | undefined => {
        switch (c.k) {
          case 'R':
            return flushThen({ tag: 'relation', relation: c.relation });
          case 'SS': {
            const sent = flush();
            streamXid = c.xid;
            return sent;
          }
          case 'SX':
            if (streamXid === null)
              throw new PgferryError('PROTOCOL_ERROR', 'a streamed change outside a stream block');
            return streamed(streamXid, c.xid, c.ev);
          case 'SE': {
            const sent = flush();
            streamXid = null;
            batchXid = null;
            return sent;
          }
          case 'SC':
            lastForwarded = c.endLsn;
            return flushThen({
              tag: 'streamCommit',
              xid: c.xid,
              commitLsn: c.commitLsn,
              endLsn: c.endLsn,
              commitTime: c.commitTime,
            });
          case 'SA':
            return flushThen({ tag: 'streamAbort', xid: c.xid, subxid: c.subxid });
        }
        if (batch.count === 0) batchStartedAt = Date.now();
        batch.add(c);
        if (c.k === 'B') inTxn = true;
        else if (c.k === 'C') {
          inTxn = false;
          lastForwarded = c.endLsn;
          // at a commit: send now, or set a timer to send if nothing else comes (batch-hold.ts); when it
          // fires, transactions committed meanwhile may wait in the paused socket: read them first, then
          // send (unless a transaction has begun in the batch: its own commit sends it)
          if (batchCommittedAt === null) batchCommittedAt = commitTimeMs(c.commitTime);
          const decision = holdDecision(holdMs, {
            now: Date.now(),
            startedAt: batchStartedAt,
            firstCommitAt: batchCommittedAt,
            more,
            timerSet: holdTimer !== null,
          });
          if (decision && 'send' in decision) return flush();
          if (decision)
            holdTimer = setTimeout(() => {
              holdTimer = null;
              const sentBefore = batchesSent;
              stream.wakeReader();
              // unless what was read meanwhile sent this batch already
              setImmediate(() => {
                if (!inTxn && batchesSent === sentBefore) void flush()?.catch(() => undefined);
              });
            }, decision.waitMs);
        }
        if (batch.count >= BATCH_ITEMS || batch.byteLength >= BATCH_BYTES) return flush();
        return undefined;
      },
      onKeepalive: (lsn: string, idle: boolean) => {
        // nothing queued, nothing open, everything forwarded acknowledged: the source is idle up to lsn
        // (cheap checks first: keepalives come often under load, LSN parsing is not free)
        if (!idle || inTxn || batch.count > 0 || Date.now() - lastAdvance < 1000) return;
        const confirmed = this.st.confirmedLsn ? parseLsn(this.st.confirmedLsn) : parseLsn(from);
        if (parseLsn(lastForwarded) > confirmed) return;
        const at = parseLsn(lsn);
        if (at <= confirmed) return;
        lastAdvance = Date.now();
        void conn.send({ tag: 'advance', lsn: formatLsn(at) }).catch(() => undefined);
      },
    });
    await Promise.race([run, closed]);
    throw new PgferryError('PRIMARY_UNAVAILABLE', 'the replication stream ended');
  }

  /** Sends the primary's sequence values (periodically, on request, and before a clean stop). */
  private async sendSequences(requestId: string | null): Promise<void> {
    const conn = this.conn;
    if (!conn || conn.isClosed || this.st.phase !== 'streaming') return;
    try {
      const { sequences, schema } = await this.withMonitor(async (monitor) => ({
        sequences: await readSequences(monitor),
        schema: requestId ? await this.schemaReport(monitor) : undefined,
      }));
      await conn.send({ tag: 'sequences', requestId, sequences, ...(schema ? { schema } : {}) });
      if (schema) await this.stream?.ping();
    } catch (e) {
      this.log.warn('could not send sequence values', { error: describeError(e) });
    }
  }

  private async schemaReport(c: Client): Promise<SchemaReport> {
    const r = await c.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
    return { hash: await schemaHash(c), walLsn: r.rows[0].lsn };
  }

  /** The primary's schema hash, compared by the server with the replica's at the same position. */
  private async sendSchema(): Promise<void> {
    const conn = this.conn;
    if (!conn || conn.isClosed || this.st.phase !== 'streaming') return;
    try {
      const schema = await this.withMonitor((c) => this.schemaReport(c));
      await conn.send({ tag: 'schema', schema });
      await this.stream?.ping();
    } catch (e) {
      this.log.warn('could not send the schema hash', { error: describeError(e) });
    }
  }

  private async heartbeat(): Promise<void> {
    const conn = this.conn;
    if (!conn || conn.isClosed) return;
    await conn
      .send({
        tag: 'heartbeat',
        sentAt: new Date().toISOString(),
        walLsn: this.st.currentWalLsn,
        retainedWalBytes: this.st.retainedWalBytes,
      })
      .catch(() => undefined);
  }

  /** Retained WAL, replica identities of new tables; drops the slot past maxRetainedWalBytes. */
  private async watch(): Promise<void> {
    if (this.stopping) return;
    try {
      await this.withMonitor(async (c) => {
        const s = await slotInfo(c, this.cfg.source.slot);
        this.st.slotExists = s.exists;
        this.st.retainedWalBytes = s.retainedWalBytes;
        this.st.currentWalLsn = s.currentWalLsn;
        if (this.st.phase === 'streaming') await ensureReplicaIdentities(c, this.log);
        if (
          s.exists &&
          s.retainedWalBytes !== null &&
          s.retainedWalBytes > this.cfg.maxRetainedWalBytes &&
          this.st.phase !== 'initial-copy'
        ) {
          this.log.error(
            'DROPPING THE REPLICATION SLOT: it retains more WAL than allowed; a full resync follows when the backup server is reachable',
            {
              slot: this.cfg.source.slot,
              retainedWalBytes: s.retainedWalBytes,
              maxRetainedWalBytes: this.cfg.maxRetainedWalBytes,
            },
          );
          await this.stream?.stop();
          await dropSlot(c, this.cfg.source.slot);
          this.st.slotExists = false;
          this.st.slotDroppedAt = new Date().toISOString();
        }
      });
    } catch (e) {
      this.log.warn('could not check the primary', { error: describeError(e) });
      await closeQuietly(this.monitor);
      this.monitor = null;
    }
  }
}
