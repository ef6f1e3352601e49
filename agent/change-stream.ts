/**
 * The agent's change stream: the only file that touches pg-logical-replication.
 *
 * Acknowledgement rules (they live here and nowhere else):
 * - auto-acknowledge is off and its timer is disabled (`timeoutSeconds: 0`): the library never confirms by itself;
 * - the slot is confirmed only through `confirm(lsn)`, called with what the backup server durably applied
 *   (reported exactly, see `reported`);
 * - keepalives are answered with that same durable LSN, and it is re-sent every few seconds so the walsender
 *   never times out while the stream is paused by back-pressure;
 * - every (re)start passes an explicit start LSN (the server's applied position), never the library's
 *   internal "last received" one.
 * The library keeps the connection, the keepalives, the acknowledgements and the flow control (the socket
 * is paused while handled messages wait); the messages themselves are decoded by our own plugin
 * (pgoutput-decoder.ts) straight into `Change`s: values stay PostgreSQL's exact text, unchanged TOAST
 * columns are reported by index.
 * While only a trickle arrives, the connection is read at most once per `readPauseMs` (read-pacer.ts).
 */
import type { Socket } from 'node:net';
import { LogicalReplicationService } from 'pg-logical-replication';
import type { Client, ClientConfig } from 'pg';
import { PgferryError } from '../shared/errors';
import { formatLsn, type Lsn, parseLsn } from '../shared/lsn';
import { STREAMED_TRANSACTIONS_VERSION } from '../shared/protocol/messages';
import { quoteIdent, quoteLiteral } from '../shared/sql-ident';
import { PgoutputDecoder, type StreamEvent } from './pgoutput-decoder';
import { paceReads, type ReadPacer } from './read-pacer';

export type { ChangeEvent, StreamEvent } from './pgoutput-decoder';

export interface StreamHandlers {
  /**
   * Called once per event, in order. A returned promise is awaited: the stream pauses until it resolves
   * (flow control); return nothing when there is nothing to wait for.
   */
  onEvent(e: StreamEvent, hasMoreQueued: boolean): Promise<void> | undefined;
  /** the walsender's position while nothing is pending: the source may be idle up to `lsn` */
  onKeepalive(lsn: string, idle: boolean): void;
}

interface ServiceInternals {
  _messageQueue: { lsn: string; data: unknown }[];
  _processing: boolean;
  _stop: boolean;
  _connection: { stream?: { pause?: () => void; resume?: () => void } } | null;
  _processQueue: () => void;
}

/**
 * The library's flow control, without its cost per message: it awaits an EventEmitter2 `emitAsync` (a
 * promise and several microtasks) for every message, which was a large share of the agent's CPU under a
 * steady load. This loop keeps its rules (the socket paused while messages wait, resumed once the queue
 * is empty, messages handed on one at a time, in order) but waits only when the handler returns a
 * promise. Installed only over the internals it was written for; otherwise the library's own loop runs.
 */
function installQueueLoop(
  internals: ServiceInternals,
  handle: (lsn: string, data: unknown) => Promise<void> | undefined,
): boolean {
  if (typeof internals._processQueue !== 'function' || !Array.isArray(internals._messageQueue)) return false;
  const next = (): void => {
    const q = internals._messageQueue;
    while (q.length > 0 && !internals._stop) {
      const m = q.shift() as { lsn: string; data: unknown };
      const waiting = handle(m.lsn, m.data);
      if (waiting) {
        waiting.then(next, next);
        return;
      }
    }
    internals._processing = false;
    if (!internals._stop) internals._connection?.stream?.resume?.();
  };
  internals._processQueue = () => {
    if (internals._processing || internals._stop) return;
    internals._processing = true;
    internals._connection?.stream?.pause?.();
    // after the current socket read has queued all its messages, as the library's own loop does
    queueMicrotask(next);
  };
  return true;
}

/**
 * The library reports `lsn + 1` ("last byte + 1"), but the positions we confirm (commit end, keepalive
 * end) are already "+1" positions, as in PostgreSQL's own apply worker. Reporting one more would never
 * equal the walsender's sent position, and a fast shutdown of the primary waits for exactly that equality.
 */
function reported(lsn: string): string {
  const v = parseLsn(lsn);
  return v > 0n ? formatLsn((v - 1n) as Lsn) : lsn;
}

/** What the plugin hands the library to queue: an event, nothing (a message without changes), or a failure. */
type Parsed = StreamEvent | null | Error;

/**
 * An output plugin for LogicalReplicationService (its shape: `name`, `start`, `parse`): starts pgoutput
 * on our publication (protocol 1, or 2 with `streaming 'on'`: transactions bigger than the primary's
 * `logical_decoding_work_mem` are sent while they run instead of being spilled to disk on the primary
 * until they commit) and decodes each message with our decoder. `parse` runs inside the pg
 * connection's data listener, where a throw would crash the process: a message it cannot read becomes an
 * Error that the stream fails with.
 */
export class PgoutputChangesPlugin {
  readonly options: { publication: string; streamInProgress: boolean };
  private readonly decoder = new PgoutputDecoder();
  private pacer: ReadPacer | null = null;

  constructor(
    publication: string,
    streamInProgress: boolean,
    /** see read-pacer.ts; 0 reads as soon as anything arrives */
    private readonly readPauseMs = 0,
  ) {
    this.options = { publication, streamInProgress };
  }

  get name(): string {
    return 'pgoutput';
  }

  start(client: Client, slotName: string, lastLsn: string): Promise<unknown> {
    const protocol = this.options.streamInProgress
      ? `proto_version '2', streaming 'on'`
      : `proto_version '1'`;
    const socket = (client as unknown as { connection?: { stream?: Socket } }).connection?.stream;
    if (socket) this.pacer = paceReads(socket, this.readPauseMs);
    return client.query(
      `START_REPLICATION SLOT ${quoteIdent(slotName)} LOGICAL ${lastLsn} ` +
        `(${protocol}, publication_names ${quoteLiteral(this.options.publication)}, messages 'false')`,
    );
  }

  /** Reads the connection at once if pacing paused it. */
  wake(): void {
    this.pacer?.wake();
  }

  /** Ends read pacing (the connection is closing). */
  release(): void {
    this.pacer?.release();
    this.pacer = null;
  }

  parse(buf: Buffer): Parsed {
    try {
      return this.decoder.decode(buf);
    } catch (e) {
      return e instanceof Error ? e : new Error(String(e));
    }
  }
}

/**
 * Whether to ask for transactions while they run: wanted by the config, understood by the backup server
 * (link protocol 3) and offered by the primary (pgoutput protocol 2 with streaming, PostgreSQL 14+).
 */
export function streamsInProgress(wanted: boolean, linkVersion: number, pgMajor: number): boolean {
  return wanted && linkVersion >= STREAMED_TRANSACTIONS_VERSION && pgMajor >= 14;
}

export interface ChangeStreamOptions {
  /** stream transactions while they run (pgoutput protocol 2, PostgreSQL 14 and later); default off */
  streamInProgress?: boolean;
  /** after a read that brought little, wait this long before reading again (read-pacer.ts); default 0 */
  readPauseMs?: number;
  /** how often the durable position is re-sent to the walsender; default 5 s */
  statusIntervalMs?: number;
}

export class ChangeStream {
  private service: LogicalReplicationService | null = null;
  private plugin: PgoutputChangesPlugin | null = null;
  private durable = '0/0';
  private timer: NodeJS.Timeout | null = null;
  private failure: Error | null = null;

  constructor(
    private readonly clientConfig: ClientConfig,
    private readonly slot: string,
    private readonly publication: string,
    private readonly opts: ChangeStreamOptions = {},
  ) {}

  /** Streams from `startLsn` until `stop()` or an error; rejects with the error. */
  async run(startLsn: string, handlers: StreamHandlers): Promise<void> {
    this.durable = startLsn;
    this.failure = null;
    const service = new LogicalReplicationService(this.clientConfig, {
      acknowledge: { auto: false, timeoutSeconds: 0 },
      flowControl: { enabled: true },
    });
    this.service = service;
    const internals = service as unknown as ServiceInternals;
    const plugin = new PgoutputChangesPlugin(
      this.publication,
      this.opts.streamInProgress ?? false,
      this.opts.readPauseMs ?? 0,
    );
    this.plugin = plugin;
    const failed = (e: unknown) => this.fail(e instanceof Error ? e : new Error(String(e)));

    // not async: a promise is made only when the handler returns one (flow control awaits it)
    const onData = (_lsn: string, ev: Parsed): Promise<void> | undefined => {
      if (this.failure || ev === null) return undefined;
      if (ev instanceof Error) {
        this.fail(ev);
        return undefined;
      }
      try {
        return handlers.onEvent(ev, internals._messageQueue.length > 0)?.catch(failed);
      } catch (e) {
        failed(e);
        return undefined;
      }
    };
    if (!installQueueLoop(internals, (lsn, data) => onData(lsn, data as Parsed))) service.on('data', onData);
    service.on('heartbeat', (lsn: string, _ts: number, shouldRespond: boolean) => {
      const idle = internals._messageQueue.length === 0 && !internals._processing;
      if (shouldRespond) void service.acknowledge(reported(this.durable)).catch(() => undefined);
      handlers.onKeepalive(lsn, idle);
    });
    let errored: Error | null = null;
    service.on('error', (e: Error) => {
      errored = e;
    });
    this.timer = setInterval(
      () => void service.acknowledge(reported(this.durable)).catch(() => undefined),
      this.opts.statusIntervalMs ?? 5000,
    );
    try {
      await service.subscribe(plugin, this.slot, startLsn);
    } catch (e) {
      errored = errored ?? (e as Error);
    } finally {
      if (this.timer) clearInterval(this.timer);
      this.timer = null;
      plugin.release();
      this.plugin = null;
      // stop(), not destroy(): our error listener must outlive the connection (a late FATAL would crash)
      await service.stop().catch(() => undefined);
      this.service = null;
    }
    const err = this.failure ?? errored;
    if (err)
      throw err instanceof PgferryError
        ? err
        : new PgferryError('PRIMARY_UNAVAILABLE', `replication stream ended: ${err.message}`, { cause: err });
  }

  /** Confirms the slot up to `lsn` (durably applied on the backup server). */
  async confirm(lsn: string): Promise<void> {
    this.durable = lsn;
    await this.service?.acknowledge(reported(lsn)).catch(() => undefined);
  }

  /**
   * Reads the primary's connection at once if read pacing paused it: what waits in the socket is handed
   * on (to `onEvent`) before the next turn of the event loop's checks (setImmediate).
   */
  wakeReader(): void {
    this.plugin?.wake();
  }

  /** Asks the walsender for an immediate keepalive (its current position), without confirming anything new. */
  async ping(): Promise<void> {
    await this.service?.acknowledge(reported(this.durable), true).catch(() => undefined);
  }

  private fail(e: Error): void {
    this.failure = e;
    void this.service?.stop();
  }

  async stop(): Promise<void> {
    await this.service?.stop().catch(() => undefined);
  }
}
