/**
 * PostgreSQL log sequence numbers as a value type. Parsing accepts both forms PostgreSQL uses
 * (`0/1939850` and the zero-padded `00000000/01939990`); formatting gives the short form.
 * Always compare with `compare`/`max`, never as strings.
 */
export type Lsn = bigint & { readonly __lsn: unique symbol };

const LSN_RE = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/;

export const ZERO_LSN = 0n as Lsn;

/** value of the hex digits text[from..to), or -1 when one is not a hex digit */
function hexValue(text: string, from: number, to: number): number {
  let v = 0;
  for (let i = from; i < to; i++) {
    const c = text.charCodeAt(i);
    const d = c >= 48 && c <= 57 ? c - 48 : c >= 65 && c <= 70 ? c - 55 : c >= 97 && c <= 102 ? c - 87 : -1;
    if (d < 0) return -1;
    v = v * 16 + d;
  }
  return v;
}

export function parseLsn(text: string): Lsn {
  // fast path (every replicated transaction parses two): "X/Y" with a high part below 2^21, exact as a number
  const slash = text.indexOf('/');
  const n = text.length;
  if (slash > 0 && slash <= 8 && n - slash > 1 && n - slash <= 9) {
    const hi = hexValue(text, 0, slash);
    const lo = hexValue(text, slash + 1, n);
    if (hi >= 0 && hi < 0x200000 && lo >= 0) return BigInt(hi * 0x100000000 + lo) as Lsn;
  }
  const m = LSN_RE.exec(text.trim());
  if (!m) throw new Error(`invalid LSN "${text}": expected the form X/Y in hexadecimal, e.g. 0/16B3748`);
  return ((BigInt(`0x${m[1]}`) << 32n) | BigInt(`0x${m[2]}`)) as Lsn;
}

export function isLsn(text: string): boolean {
  return LSN_RE.test(text.trim());
}

export function lsnFromBigInt(v: bigint): Lsn {
  if (v < 0n || v > 0xffffffffffffffffn) throw new Error(`LSN out of range: ${v}`);
  return v as Lsn;
}

export function formatLsn(lsn: Lsn): string {
  return `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffffffffn).toString(16).toUpperCase()}`;
}

export function compareLsn(a: Lsn, b: Lsn): -1 | 0 | 1 {
  return a < b ? -1 : a > b ? 1 : 0;
}

export function maxLsn(a: Lsn, b: Lsn): Lsn {
  return a >= b ? a : b;
}

/** Bytes between two positions (b - a), never negative. */
export function lsnDistance(a: Lsn, b: Lsn): bigint {
  return b > a ? b - a : 0n;
}
