/**
 * A decoder of PostgreSQL's logical replication messages (pgoutput, protocol versions 1 and 2) straight into
 * pgferry's `Change` and `RelationInfo`, without an intermediate object per row:
 * https://www.postgresql.org/docs/15/protocol-logicalrep-message-formats.html
 *
 * - values stay PostgreSQL's exact text output ('t'), `null` for NULL ('n');
 * - an unchanged TOAST value ('u') is reported by column index in `toast` (its slot in `v` is null); when
 *   the old row is sent whole (REPLICA IDENTITY FULL, 'O') the new value is taken from it instead;
 * - an old key ('K') lists every column, those outside the key as null; LSNs are text in the short form
 *   (`0/16B3748`), the commit time is microseconds since the Unix epoch, as text;
 * - Type, Origin and logical decoding Message ('M') carry nothing to apply: `null`;
 * - protocol 2 (`streaming 'on'`): a large transaction arrives while it still runs, in blocks between
 *   Stream Start and Stream Stop, each message inside a block prefixed with its (sub)transaction's xid,
 *   then a Stream Commit or a Stream Abort (of the transaction or of one subtransaction). Changes inside a
 *   block come wrapped (`k: 'SX'`) with that xid. A Relation message inside a block is the table's layout
 *   for that transaction only: it is kept apart (and handed on wrapped) until the transaction ends, so an
 *   aborted transaction's ALTER TABLE never changes how the other transactions' rows are read.
 * A message that does not follow the format is refused with PROTOCOL_ERROR, never half-read.
 */
import { PgferryError } from '../shared/errors';
import type { Change, RelationInfo, Value } from '../shared/protocol/messages';

/** A change to apply, or a table's layout (sent before its first change). */
export type ChangeEvent = Change | { k: 'R'; relation: RelationInfo };

/**
 * What the stream hands on: a change or layout of a committed transaction (between its B and C), or the
 * pieces of a transaction streamed while in progress (protocol 2): block start `SS` (top-level xid; `first`
 * on its first block), a change or layout inside the block `SX` (the xid of the subtransaction that made
 * it, the top-level one outside subtransactions), block end `SE`, then `SC` (commit) or `SA` (abort of
 * the transaction, or of subtransaction `subxid` and the subtransactions begun inside it).
 */
export type StreamEvent =
  | ChangeEvent
  | { k: 'SS'; xid: number; first: boolean }
  | { k: 'SX'; xid: number; ev: ChangeEvent }
  | { k: 'SE' }
  | { k: 'SC'; xid: number; commitLsn: string; endLsn: string; commitTime: string }
  | { k: 'SA'; xid: number; subxid: number };

/** microseconds between 1970-01-01 and 2000-01-01, PostgreSQL's epoch */
const PG_EPOCH_US = 946_684_800_000_000;

const IDENTITY: Record<string, RelationInfo['replicaIdentity']> = {
  d: 'default',
  n: 'nothing',
  f: 'full',
  i: 'index',
};

const READ_HINT =
  'the agent could not read the change stream of the primary (pgoutput protocol 1); it retries from the last applied position. If this persists, report it with the log line and the PostgreSQL version';

const hex = (n: number): string => n.toString(16).toUpperCase();

export class PgoutputDecoder {
  private buf: Buffer = Buffer.alloc(0);
  private pos = 0;
  /** indexes of 'u' columns in the tuple read last, or null */
  private toast: number[] | null = null;
  private readonly relations = new Map<number, RelationInfo>();
  /** the top-level xid of the stream block being read (protocol 2), or null outside blocks */
  private streamXid: number | null = null;
  /** layouts sent inside stream blocks, per top-level xid: valid for that transaction only */
  private readonly streamRelations = new Map<number, Map<number, RelationInfo>>();

  /** Decodes one message (the XLogData payload). */
  decode(buf: Buffer): StreamEvent | null {
    this.buf = buf;
    this.pos = 0;
    const tag = this.u8();
    const ev = this.streamXid === null ? this.message(tag) : this.inBlock(tag);
    if (this.pos !== buf.length) throw this.invalid(`${buf.length - this.pos} bytes left over`);
    return ev;
  }

  /** A message inside a stream block: every kind but Stream Stop carries its (sub)transaction's xid. */
  private inBlock(tag: number): StreamEvent | null {
    if (tag === 0x45) {
      // E: Stream Stop
      this.streamXid = null;
      return { k: 'SE' };
    }
    if (tag === 0x4f) return this.message(tag); // Origin: no xid
    if (
      tag !== 0x49 &&
      tag !== 0x55 &&
      tag !== 0x44 &&
      tag !== 0x54 &&
      tag !== 0x52 &&
      tag !== 0x59 &&
      tag !== 0x4d
    )
      throw this.invalid(`message type ${describeByte(tag)} inside a stream block`);
    const xid = this.u32();
    const ev = this.message(tag);
    return ev === null ? null : { k: 'SX', xid, ev: ev as ChangeEvent };
  }

  private message(tag: number): StreamEvent | null {
    let ev: StreamEvent | null;
    switch (tag) {
      case 0x49: // I
        ev = this.insert();
        break;
      case 0x55: // U
        ev = this.update();
        break;
      case 0x44: // D
        ev = this.delete();
        break;
      case 0x42: {
        // B: final LSN of the transaction, commit time, xid
        const commitLsn = this.lsn();
        ev = { k: 'B', commitLsn, xid: this.skip(8).u32() };
        break;
      }
      case 0x43: // C
        this.skip(1 + 8); // flags (unused), commit LSN (as in Begin)
        ev = { k: 'C', endLsn: this.lsn(), commitTime: this.timestamp() };
        break;
      case 0x52: // R
        ev = { k: 'R', relation: this.relation() };
        break;
      case 0x54: // T
        ev = this.truncate();
        break;
      case 0x59: // Y: type (oid, namespace, name): the replica knows its types
        this.skip(4).cstring();
        this.cstring();
        ev = null;
        break;
      case 0x4f: // O: origin (commit LSN on the origin, name)
        this.skip(8).cstring();
        ev = null;
        break;
      case 0x4d: // M: logical decoding message (flags, LSN, prefix, content)
        this.skip(1 + 8).cstring();
        this.skip(this.i32());
        ev = null;
        break;
      case 0x53: {
        // S: Stream Start (xid, first-segment flag)
        const xid = this.u32();
        const first = this.u8() === 1;
        this.streamXid = xid;
        if (first) this.streamRelations.delete(xid);
        ev = { k: 'SS', xid, first };
        break;
      }
      case 0x63: {
        // c: Stream Commit (xid, flags, commit LSN, end LSN, commit time)
        const xid = this.u32();
        this.skip(1);
        const commitLsn = this.lsn();
        ev = { k: 'SC', xid, commitLsn, endLsn: this.lsn(), commitTime: this.timestamp() };
        this.streamRelations.delete(xid);
        break;
      }
      case 0x41: {
        // A: Stream Abort (xid, subxid; PostgreSQL 16 adds the abort LSN and time with parallel streaming)
        const xid = this.u32();
        const subxid = this.u32();
        if (this.pos < this.buf.length) this.skip(8 + 8);
        if (subxid === xid) this.streamRelations.delete(xid);
        ev = { k: 'SA', xid, subxid };
        break;
      }
      default:
        throw this.invalid(`unknown message type ${describeByte(tag)}`);
    }
    return ev;
  }

  private insert(): Change {
    const rel = this.knownRelation();
    this.expect(0x4e); // N
    return { k: 'I', r: rel.relid, v: this.tuple(rel) };
  }

  private update(): Change {
    const rel = this.knownRelation();
    let sub = this.u8();
    let old: Value[] | undefined;
    let oldToast: number[] | null = null;
    const whole = sub === 0x4f; // O: the whole old row (REPLICA IDENTITY FULL); K: the old key
    if (whole || sub === 0x4b) {
      old = this.tuple(rel);
      oldToast = this.toast;
      sub = this.u8();
    }
    if (sub !== 0x4e) throw this.invalid(`expected the new tuple (N), got ${describeByte(sub)}`);
    const v = this.tuple(rel);
    let toast = this.toast;
    if (toast && whole && old) {
      // unchanged TOAST values are in the old row: take them from there, unless it lacks them too
      const keep: number[] = [];
      for (const i of toast) {
        if (oldToast?.includes(i)) keep.push(i);
        else v[i] = old[i];
      }
      toast = keep.length ? keep : null;
    }
    const c: Change = { k: 'U', r: rel.relid, v };
    if (toast) c.toast = toast;
    if (old) c.old = old;
    return c;
  }

  private delete(): Change {
    const rel = this.knownRelation();
    const sub = this.u8();
    if (sub !== 0x4b && sub !== 0x4f)
      throw this.invalid(`expected the old key (K) or row (O), got ${describeByte(sub)}`);
    return { k: 'D', r: rel.relid, old: this.tuple(rel) };
  }

  private truncate(): Change {
    const n = this.i32();
    const flags = this.u8();
    this.need(n * 4);
    const rs: number[] = [];
    for (let i = 0; i < n; i++) rs.push(this.u32());
    return { k: 'T', rs, cascade: (flags & 1) !== 0, restartIdentity: (flags & 2) !== 0 };
  }

  private relation(): RelationInfo {
    const relid = this.u32();
    const schema = this.cstring();
    const name = this.cstring();
    const ident = this.u8();
    const replicaIdentity = IDENTITY[String.fromCharCode(ident)];
    if (!replicaIdentity) throw this.invalid(`unknown replica identity ${describeByte(ident)}`);
    const count = this.i16();
    const columns: RelationInfo['columns'] = [];
    for (let i = 0; i < count; i++) {
      const flags = this.u8();
      const colName = this.cstring();
      const typeOid = this.u32();
      this.skip(4); // type modifier
      columns.push({ name: colName, typeOid, key: (flags & 1) !== 0 });
    }
    const rel: RelationInfo = { relid, schema, name, replicaIdentity, columns };
    if (this.streamXid === null) this.relations.set(relid, rel);
    else {
      const own = this.streamRelations.get(this.streamXid) ?? new Map<number, RelationInfo>();
      this.streamRelations.set(this.streamXid, own);
      own.set(relid, rel);
    }
    return rel;
  }

  /**
   * A relation that a Relation message announced before (PostgreSQL always sends that first); inside a
   * stream block, the layout that transaction was given.
   */
  private knownRelation(): RelationInfo {
    const r = this.u32();
    const rel =
      (this.streamXid !== null ? this.streamRelations.get(this.streamXid)?.get(r) : undefined) ??
      this.relations.get(r);
    if (!rel) throw this.invalid(`relation ${r} was not announced by a Relation message`);
    return rel;
  }

  /** TupleData: the values in column order; 'u' columns are null here and listed in `this.toast`. */
  private tuple(rel: RelationInfo): Value[] {
    const n = this.i16();
    const expected = rel.columns.length;
    if (n !== expected) throw this.invalid(`a tuple of ${n} columns for a relation of ${expected}`);
    const b = this.buf;
    const v: Value[] = new Array(n);
    this.toast = null;
    for (let i = 0; i < n; i++) {
      const kind = this.u8();
      if (kind === 0x74) {
        // t: Int32 length, then the text
        const len = this.i32();
        if (len < 0) throw this.invalid(`negative value length ${len}`);
        this.need(len);
        const at = this.pos;
        v[i] = len <= SHORT_TEXT ? shortText(b, at, len) : b.toString('utf8', at, at + len);
        this.pos = at + len;
      } else if (kind === 0x6e) {
        v[i] = null; // n
      } else if (kind === 0x75) {
        v[i] = null; // u: unchanged TOAST value, not sent
        if (this.toast) this.toast.push(i);
        else this.toast = [i];
      } else {
        // b (binary) only comes when asked for with the `binary` option, which pgferry never sets
        throw this.invalid(`unexpected column kind ${describeByte(kind)}`);
      }
    }
    return v;
  }

  private expect(byte: number): void {
    const got = this.u8();
    if (got !== byte) throw this.invalid(`expected ${describeByte(byte)}, got ${describeByte(got)}`);
  }

  private need(n: number): void {
    if (this.pos + n > this.buf.length) throw this.invalid('the message ends early');
  }

  private skip(n: number): this {
    if (n < 0) throw this.invalid(`negative length ${n}`);
    this.need(n);
    this.pos += n;
    return this;
  }

  private u8(): number {
    this.need(1);
    return this.buf[this.pos++];
  }

  private i16(): number {
    this.need(2);
    const b = this.buf;
    const p = this.pos;
    this.pos = p + 2;
    return ((b[p] << 24) | (b[p + 1] << 16)) >> 16;
  }

  private i32(): number {
    this.need(4);
    const b = this.buf;
    const p = this.pos;
    this.pos = p + 4;
    return (b[p] << 24) | (b[p + 1] << 16) | (b[p + 2] << 8) | b[p + 3];
  }

  private u32(): number {
    return this.i32() >>> 0;
  }

  private lsn(): string {
    const hi = this.u32();
    return `${hex(hi)}/${hex(this.u32())}`;
  }

  /** Int64 microseconds since 2000-01-01 → microseconds since 1970-01-01, as text. */
  private timestamp(): string {
    const hi = this.i32();
    const lo = this.u32();
    // exact in a double while |hi| < 2^20 (until the year 2142); BigInt beyond
    if (hi >= -0x100000 && hi < 0x100000) return String(hi * 0x1_0000_0000 + lo + PG_EPOCH_US);
    return String((BigInt(hi) << 32n) + BigInt(lo) + BigInt(PG_EPOCH_US));
  }

  private cstring(): string {
    const end = this.buf.indexOf(0, this.pos);
    if (end < 0) throw this.invalid('a string without its terminating zero byte');
    const s = this.buf.toString('utf8', this.pos, end);
    this.pos = end + 1;
    return s;
  }

  private invalid(what: string): PgferryError {
    return new PgferryError(
      'PROTOCOL_ERROR',
      `unreadable pgoutput message from the primary (${what}, at byte ${this.pos} of ${this.buf.length}, type ${describeByte(this.buf[0])})`,
      { hint: READ_HINT },
    );
  }
}

function describeByte(b: number | undefined): string {
  if (b === undefined) return 'none';
  return b >= 0x20 && b < 0x7f ? `'${String.fromCharCode(b)}'` : `0x${b.toString(16).padStart(2, '0')}`;
}

/** Up to this many bytes, ASCII text is made in JavaScript: cheaper than a call into the runtime. */
const SHORT_TEXT = 8;

function shortText(b: Buffer, at: number, len: number): string {
  let s = '';
  for (let i = at; i < at + len; i++) {
    const c = b[i];
    if (c >= 0x80) return b.toString('utf8', at, at + len);
    s += String.fromCharCode(c);
  }
  return s;
}
