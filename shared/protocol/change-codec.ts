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

class Writer {
  buf: Buffer;
  off = 0;
  constructor(size: number) {
    this.buf = Buffer.allocUnsafe(size);
  }
  ensure(n: number): void {
    if (this.off + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.off + n));
    this.buf.copy(next, 0, 0, this.off);
    this.buf = next;
  }
  u8(v: number): void {
    this.ensure(1);
    this.buf[this.off++] = v;
  }
  u16(v: number): void {
    this.ensure(2);
    this.buf.writeUInt16BE(v, this.off);
    this.off += 2;
  }
  u32(v: number): void {
    this.ensure(4);
    this.buf.writeUInt32BE(v >>> 0, this.off);
    this.off += 4;
  }
  str(s: string): void {
    this.ensure(2 + s.length * 3);
    const n = this.buf.write(s, this.off + 2, 'utf8');
    this.buf.writeUInt16BE(n, this.off);
    this.off += 2 + n;
  }
  values(v: Value[], toast?: ReadonlySet<number>): void {
    this.u16(v.length);
    for (let i = 0; i < v.length; i++) {
      const x = v[i];
      if (toast?.has(i)) {
        this.ensure(4);
        this.buf.writeInt32BE(TOAST_LEN, this.off);
        this.off += 4;
      } else if (x === null) {
        this.ensure(4);
        this.buf.writeInt32BE(NULL_LEN, this.off);
        this.off += 4;
      } else {
        this.ensure(4 + x.length * 3);
        const n = this.buf.write(x, this.off + 4, 'utf8');
        this.buf.writeInt32BE(n, this.off);
        this.off += 4 + n;
      }
    }
  }
}

export function encodeChanges(items: Change[]): Buffer {
  const w = new Writer(64 * 1024);
  for (const c of items) {
    w.u8(KIND[c.k]);
    switch (c.k) {
      case 'B':
        w.str(c.commitLsn);
        w.u32(c.xid);
        break;
      case 'I':
        w.u32(c.r);
        w.values(c.v);
        break;
      case 'U':
        w.u32(c.r);
        w.u8(c.old ? 1 : 0);
        w.values(c.v, c.toast ? new Set(c.toast) : undefined);
        if (c.old) w.values(c.old);
        break;
      case 'D':
        w.u32(c.r);
        w.values(c.old);
        break;
      case 'T':
        w.u16(c.rs.length);
        for (const r of c.rs) w.u32(r);
        w.u8((c.cascade ? 1 : 0) | (c.restartIdentity ? 2 : 0));
        break;
      case 'C':
        w.str(c.endLsn);
        w.str(c.commitTime);
        break;
    }
  }
  return w.buf.subarray(0, w.off);
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
