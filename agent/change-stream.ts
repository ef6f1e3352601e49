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
 * Values stay PostgreSQL's exact text (the library's type parsers are replaced by identity); unchanged TOAST
 * columns (undefined) are reported by index.
 */
import { LogicalReplicationService, type Pgoutput, PgoutputPlugin } from 'pg-logical-replication';
import type { ClientConfig } from 'pg';
import { PgferryError } from '../shared/errors';
import { formatLsn, type Lsn, parseLsn } from '../shared/lsn';
import type { Change, RelationInfo, Value } from '../shared/protocol/messages';

export type StreamEvent = { kind: 'relation'; relation: RelationInfo } | { kind: 'change'; change: Change };

export interface StreamHandlers {
  /** awaited: the stream pauses until it resolves (flow control) */
  onEvent(e: StreamEvent, hasMoreQueued: boolean): Promise<void>;
  /** the walsender's position while nothing is pending: the source may be idle up to `lsn` */
  onKeepalive(lsn: string, idle: boolean): void;
}

interface PluginInternals {
  parser: { readRelationColumn: (reader: unknown) => Pgoutput.RelationColumn };
}
interface ServiceInternals {
  _messageQueue: unknown[];
  _processing: boolean;
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

/** µs-precision commit time, as text; the library gives a BigInt. */
const usText = (t: unknown): string => String(t);

function toArray(rel: Pgoutput.MessageRelation, row: Record<string, unknown> | null | undefined): Value[] {
  return rel.columns.map((c) => {
    const v = row?.[c.name];
    return v === undefined || v === null ? null : String(v);
  });
}

export function relationInfo(rel: Pgoutput.MessageRelation): RelationInfo {
  const keys = new Set(rel.keyColumns);
  return {
    relid: rel.relationOid,
    schema: rel.schema,
    name: rel.name,
    replicaIdentity: rel.replicaIdentity,
    columns: rel.columns.map((c) => ({ name: c.name, typeOid: c.typeOid, key: keys.has(c.name) })),
  };
}

export function toChange(msg: Pgoutput.Message): StreamEvent | null {
  switch (msg.tag) {
    case 'begin':
      return { kind: 'change', change: { k: 'B', commitLsn: msg.commitLsn ?? '0/0', xid: msg.xid } };
    case 'commit':
      return {
        kind: 'change',
        change: { k: 'C', endLsn: msg.commitEndLsn ?? '0/0', commitTime: usText(msg.commitTime) },
      };
    case 'relation':
      return { kind: 'relation', relation: relationInfo(msg) };
    case 'insert':
      return {
        kind: 'change',
        change: { k: 'I', r: msg.relation.relationOid, v: toArray(msg.relation, msg.new) },
      };
    case 'update': {
      const rel = msg.relation;
      const toast: number[] = [];
      rel.columns.forEach((c, i) => {
        if (msg.new[c.name] === undefined) toast.push(i);
      });
      const oldRow = msg.old ?? msg.key;
      return {
        kind: 'change',
        change: {
          k: 'U',
          r: rel.relationOid,
          v: toArray(rel, msg.new),
          ...(toast.length ? { toast } : {}),
          ...(oldRow ? { old: toArray(rel, oldRow) } : {}),
        },
      };
    }
    case 'delete':
      return {
        kind: 'change',
        change: { k: 'D', r: msg.relation.relationOid, old: toArray(msg.relation, msg.old ?? msg.key) },
      };
    case 'truncate':
      return {
        kind: 'change',
        change: {
          k: 'T',
          rs: msg.relations.map((r) => r.relationOid),
          cascade: msg.cascade,
          restartIdentity: msg.restartIdentity,
        },
      };
    default:
      return null; // type, origin, message: nothing to apply
  }
}

export class ChangeStream {
  private service: LogicalReplicationService | null = null;
  private durable = '0/0';
  private timer: NodeJS.Timeout | null = null;
  private failure: Error | null = null;

  constructor(
    private readonly clientConfig: ClientConfig,
    private readonly slot: string,
    private readonly publication: string,
    private readonly statusIntervalMs = 5000,
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
    const plugin = new PgoutputPlugin({ protoVersion: 1, publicationNames: [this.publication] });
    const parser = (plugin as unknown as PluginInternals).parser;
    const readColumn = parser.readRelationColumn.bind(parser);
    parser.readRelationColumn = (reader) => ({ ...readColumn(reader), parser: (raw: unknown) => raw });

    service.on('data', async (_lsn: string, msg: Pgoutput.Message) => {
      if (this.failure) return;
      try {
        const ev = toChange(msg);
        if (ev) await handlers.onEvent(ev, internals._messageQueue.length > 0);
      } catch (e) {
        this.fail(e as Error);
      }
    });
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
      this.statusIntervalMs,
    );
    try {
      await service.subscribe(plugin, this.slot, startLsn);
    } catch (e) {
      errored = errored ?? (e as Error);
    } finally {
      if (this.timer) clearInterval(this.timer);
      this.timer = null;
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
