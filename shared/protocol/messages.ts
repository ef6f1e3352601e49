/**
 * The messages of the agent ↔ server link, as discriminated unions on `tag`.
 * Values travel as PostgreSQL's text output (exact: microseconds, numeric, bytea hex, arrays, json);
 * `null` is SQL NULL. Unchanged TOAST columns are listed by index in `toast` and carry no value.
 */
export const PROTOCOL_NAME = 'pgferry';
/**
 * Versions this build speaks, newest last. 2: the initial copy may send several tables (or parts of one)
 * at once, each on its own `stream`. 3: transactions still in progress on the primary may be sent as
 * they run (`streamChanges`, `streamRelation`, then `streamCommit` or `streamAbort`).
 */
export const PROTOCOL_VERSIONS = [1, 2, 3] as const;
/** the first version whose initial copy may use several streams */
export const COPY_STREAMS_VERSION = 2;
/** the first version that carries transactions streamed while in progress */
export const STREAMED_TRANSACTIONS_VERSION = 3;
/** streams of one initial copy at most (each is one connection on either side) */
export const COPY_STREAMS_MAX = 4;

export interface RelationColumn {
  name: string;
  typeOid: number;
  /** part of the replica identity (key) */
  key: boolean;
}

export interface RelationInfo {
  relid: number;
  schema: string;
  name: string;
  replicaIdentity: 'default' | 'nothing' | 'full' | 'index';
  columns: RelationColumn[];
}

export type Value = string | null;

/** One item of a change batch. LSNs are text (X/Y). */
export type Change =
  | { k: 'B'; commitLsn: string; xid: number }
  | { k: 'I'; r: number; v: Value[] }
  /** update: `v` new values, `toast` indexes of unchanged TOAST columns, `old` old key/row when sent */
  | { k: 'U'; r: number; v: Value[]; toast?: number[]; old?: Value[] }
  /** delete: `old` holds the key columns (identity default/index) or the whole row (full), in column order */
  | { k: 'D'; r: number; old: Value[] }
  | { k: 'T'; rs: number[]; cascade: boolean; restartIdentity: boolean }
  /** commit: `commitTime` is the primary's commit time in microseconds since 1970-01-01 UTC, as text */
  | { k: 'C'; endLsn: string; commitTime: string };

/** A commit time (microseconds since the Unix epoch, as text) in milliseconds. */
export function commitTimeMs(commitTime: string): number {
  return Number(commitTime) / 1000;
}

export interface SequenceValue {
  schema: string;
  name: string;
  lastValue: string;
  isCalled: boolean;
}

export interface TableRef {
  schema: string;
  name: string;
}

export type AgentMessage =
  | {
      tag: 'hello';
      protocol: typeof PROTOCOL_NAME;
      versions: number[];
      source: string;
      pgferryVersion: string;
      clientNonce: string;
    }
  | { tag: 'auth'; proof: string }
  | {
      tag: 'start';
      systemIdentifier: string;
      pgMajor: number;
      appVersion: string | null;
      slot: { exists: boolean; confirmedFlushLsn: string | null };
    }
  | { tag: 'syncBegin'; syncId: string; systemIdentifier: string; consistentLsn: string; schemaPre: string }
  /**
   * a table's COPY starts on `stream` (default 0); `parts` > 1: the table comes in that many page ranges,
   * on different streams at once
   */
  | { tag: 'syncTable'; table: TableRef; format: 'binary' | 'text'; stream?: number; parts?: number }
  | { tag: 'copyData'; stream?: number }
  /** `rows`: what the COPY on the primary reported, checked against what the replica took */
  | { tag: 'syncTableEnd'; table: TableRef; stream?: number; rows?: number }
  | { tag: 'syncEnd'; schemaPost: string; sequences: SequenceValue[] }
  | { tag: 'relation'; relation: RelationInfo }
  /** the batch itself is the frame body, in the binary form of change-codec.ts */
  | { tag: 'changes'; count: number }
  /**
   * Transaction `xid` is still running on the primary: changes it (or its subtransaction `subxid`, equal
   * to `xid` outside subtransactions) made, in the binary form of change-codec.ts (no B or C). The server
   * keeps them aside until the transaction's `streamCommit` or `streamAbort`.
   */
  | { tag: 'streamChanges'; xid: number; subxid: number; count: number }
  /** a table's layout as seen by in-progress transaction `xid` (applies to its changes that follow) */
  | { tag: 'streamRelation'; xid: number; subxid: number; relation: RelationInfo }
  /** in-progress transaction `xid` committed: apply what was streamed of it, as one transaction */
  | { tag: 'streamCommit'; xid: number; commitLsn: string; endLsn: string; commitTime: string }
  /**
   * `subxid` = `xid`: the transaction rolled back, forget it; otherwise subtransaction `subxid` rolled back:
   * forget its changes and those of subtransactions begun after it
   */
  | { tag: 'streamAbort'; xid: number; subxid: number }
  | { tag: 'sequences'; requestId: string | null; sequences: SequenceValue[]; schema?: SchemaReport }
  /** the primary's schema hash, read when its WAL was at walLsn */
  | { tag: 'schema'; schema: SchemaReport }
  | { tag: 'advance'; lsn: string }
  | { tag: 'heartbeat'; sentAt: string; walLsn: string | null; retainedWalBytes: number | null }
  | { tag: 'close'; reason: string };

export interface SchemaReport {
  hash: string;
  walLsn: string;
}

export interface ReplicaSummary {
  systemIdentifier: string;
  syncId: string;
  appliedLsn: string;
}

export type ServerMessage =
  | { tag: 'challenge'; version: number; salt: string; N: number; r: number; p: number; serverNonce: string }
  | { tag: 'authOk'; serverSignature: string }
  /** replica null: make a full copy (`resync` says it was asked for) */
  | { tag: 'welcome'; replica: ReplicaSummary | null; resync?: boolean }
  | { tag: 'syncReady' }
  | { tag: 'ack'; lsn: string }
  | { tag: 'requestSequences'; requestId: string }
  | { tag: 'error'; code: string; message: string };

export type AgentTag = AgentMessage['tag'];

/**
 * Frames the server takes in the pieces they arrived in (Frame.parts): the initial copy's data, passed on
 * to the replica as it is, so a frame costs no new buffer (a fresh 256 KiB buffer per frame drove the
 * server into a major GC every few MB once its heap had shrunk).
 */
export const isBulkFrame = (header: { tag: string }): boolean => header.tag === 'copyData';
export type ServerTag = ServerMessage['tag'];

/** Picks the highest version both sides speak, or null. */
export function negotiateVersion(
  offered: readonly number[],
  supported: readonly number[] = PROTOCOL_VERSIONS,
): number | null {
  const common = offered.filter((v) => supported.includes(v));
  return common.length ? Math.max(...common) : null;
}

export function authMessage(source: string, clientNonce: string, serverNonce: string): string {
  return `pgferry-auth-v1,${source},${clientNonce},${serverNonce}`;
}
