/**
 * A compact binary form for change batches (the hot path: every row of every transaction), carried as
 * the body of a `changes` frame. JSON costs more CPU than the whole apply on bulk loads; this is a
 * straight length-prefixed layout:
 *
 *   item   = kind u8, then per kind:
 *     B    : commitLsn str, xid u32
 *     I    : relid u32, values
 *     U    : relid u32, hasOld u8, values (new; unchanged TOAST marked), [values (old)]
 *     D    : relid u32, values (old)
 *     T    : count u16, relid u32 × count, flags u8 (1 cascade, 2 restart identity)
 *     C    : endLsn str, commitTime str
 *   values = count u16, then per value: i32 length (-1 NULL, -2 unchanged TOAST), UTF-8 bytes
 *   str    = u16 length, UTF-8 bytes
 */
import { PgferryError } from '../errors';
import type { Change, Value } from './messages';

const KIND = { B: 1, I: 2, U: 3, D: 4, T: 5, C: 6 } as const;
const NULL_LEN = -1;
const TOAST_LEN = -2;

/** Up to this many characters, a string is written by a loop here: cheaper than a call into the runtime. */
const SHORT_STRING = 48;

/**
 * Encodes changes one at a time into a batch (the agent adds each change as it arrives and knows the
 * batch's size at every point). `take()` returns the batch so far, in a buffer of its own, and starts the
 * next one; the working buffer is kept, so a stream of small batches allocates only what it sends.
 */
export class ChangeBatchEncoder {
  private buf: Buffer;
  private off = 0;
  private items = 0;

  constructor(initialBytes = 64 * 1024) {
    this.buf = Buffer.allocUnsafe(initialBytes);
  }

  /** changes in the current batch */
  get count(): number {
    return this.items;
  }

  /** encoded bytes of the current batch */
  get byteLength(): number {
    return this.off;
  }

  add(c: Change): void {
    this.items++;
    this.ensure(1 + 4 + 2);
    this.buf[this.off++] = KIND[c.k];
    switch (c.k) {
      case 'B':
        this.str(c.commitLsn);
        this.u32(c.xid);
        break;
      case 'I':
        this.u32(c.r);
        this.values(c.v, undefined);
        break;
      case 'U':
        this.u32(c.r);
        this.buf[this.off++] = c.old ? 1 : 0;
        this.values(c.v, c.toast);
        if (c.old) this.values(c.old, undefined);
        break;
      case 'D':
        this.u32(c.r);
        this.values(c.old, undefined);
        break;
      case 'T':
        this.ensure(2 + 4 * c.rs.length + 1);
        this.buf.writeUInt16BE(c.rs.length, this.off);
        this.off += 2;
        for (const r of c.rs) this.u32(r);
        this.buf[this.off++] = (c.cascade ? 1 : 0) | (c.restartIdentity ? 2 : 0);
        break;
      case 'C':
        this.str(c.endLsn);
        this.str(c.commitTime);
        break;
    }
  }

  /** The batch so far (a buffer of its own); the encoder starts an empty batch. */
  take(): Buffer {
    const out = Buffer.allocUnsafe(this.off);
    this.buf.copy(out, 0, 0, this.off);
    this.off = 0;
    this.items = 0;
    return out;
  }

  private ensure(n: number): void {
    if (this.off + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.off + n));
    this.buf.copy(next, 0, 0, this.off);
    this.buf = next;
  }

  /** u32 without a bounds check: callers ensure the room */
  private u32(v: number): void {
    const b = this.buf;
    const o = this.off;
    b[o] = v >>> 24;
    b[o + 1] = v >>> 16;
    b[o + 2] = v >>> 8;
    b[o + 3] = v;
    this.off = o + 4;
  }

  private str(s: string): void {
    this.ensure(2 + s.length * 3 + 4);
    const n = this.text(s, this.off + 2);
    this.buf.writeUInt16BE(n, this.off);
    this.off += 2 + n;
  }

  private values(v: Value[], toast: number[] | undefined): void {
    this.ensure(2);
    this.buf.writeUInt16BE(v.length, this.off);
    this.off += 2;
    for (let i = 0; i < v.length; i++) {
      const x = v[i];
      if (toast?.includes(i)) {
        this.ensure(4);
        this.u32(TOAST_LEN);
      } else if (x === null) {
        this.ensure(4);
        this.u32(NULL_LEN);
      } else {
        this.ensure(4 + x.length * 3);
        const n = this.text(x, this.off + 4);
        this.u32(n);
        this.off += n;
      }
    }
  }

  /** Writes `s` as UTF-8 at `at` (room for length × 3 ensured); returns the byte count. */
  private text(s: string, at: number): number {
    const b = this.buf;
    const len = s.length;
    if (len <= SHORT_STRING) {
      let o = at;
      for (let i = 0; i < len; i++) {
        const c = s.charCodeAt(i);
        if (c >= 0x80) return b.write(s, at, 'utf8');
        b[o++] = c;
      }
      return len;
    }
    return b.write(s, at, 'utf8');
  }
}

export function encodeChanges(items: Change[]): Buffer {
  const e = new ChangeBatchEncoder();
  for (const c of items) e.add(c);
  return e.take();
}

export function decodeChanges(buf: Buffer): Change[] {
  let off = 0;
  const need = (n: number) => {
    if (off + n > buf.length) throw new PgferryError('PROTOCOL_ERROR', 'truncated change batch');
  };
  const u8 = () => {
    need(1);
    return buf[off++];
  };
  const u16 = () => {
    need(2);
    const v = buf.readUInt16BE(off);
    off += 2;
    return v;
  };
  const u32 = () => {
    need(4);
    const v = buf.readUInt32BE(off);
    off += 4;
    return v;
  };
  const str = () => {
    const n = u16();
    need(n);
    const s = buf.toString('utf8', off, off + n);
    off += n;
    return s;
  };
  /** indexes of the unchanged TOAST values of the last `values(true)` (allocated only when there are some) */
  let toast: number[] | undefined;
  const values = (markToast = false): Value[] => {
    const count = u16();
    const out: Value[] = new Array(count);
    for (let i = 0; i < count; i++) {
      need(4);
      const n = buf.readInt32BE(off);
      off += 4;
      if (n === NULL_LEN) out[i] = null;
      else if (n === TOAST_LEN) {
        out[i] = null;
        if (markToast) {
          if (!toast) toast = [];
          toast.push(i);
        }
      } else if (n < 0)
        throw new PgferryError('PROTOCOL_ERROR', `invalid value length ${n} in a change batch`);
      else {
        need(n);
        out[i] = buf.toString('utf8', off, off + n);
        off += n;
      }
    }
    return out;
  };
  const items: Change[] = [];
  while (off < buf.length) {
    const kind = u8();
    switch (kind) {
      case KIND.B:
        items.push({ k: 'B', commitLsn: str(), xid: u32() });
        break;
      case KIND.I:
        items.push({ k: 'I', r: u32(), v: values() });
        break;
      case KIND.U: {
        const r = u32();
        const hasOld = u8() === 1;
        toast = undefined;
        const v = values(true);
        const c: Change = { k: 'U', r, v };
        if (toast) c.toast = toast;
        if (hasOld) c.old = values();
        items.push(c);
        break;
      }
      case KIND.D:
        items.push({ k: 'D', r: u32(), old: values() });
        break;
      case KIND.T: {
        const n = u16();
        const rs: number[] = [];
        for (let i = 0; i < n; i++) rs.push(u32());
        const flags = u8();
        items.push({ k: 'T', rs, cascade: (flags & 1) !== 0, restartIdentity: (flags & 2) !== 0 });
        break;
      }
      case KIND.C:
        items.push({ k: 'C', endLsn: str(), commitTime: str() });
        break;
      default:
        throw new PgferryError('PROTOCOL_ERROR', `unknown change kind ${kind} in a change batch`);
    }
  }
  return items;
}
