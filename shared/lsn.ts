/**
 * PostgreSQL log sequence numbers as a value type. Parsing accepts both forms PostgreSQL uses
 * (`0/1939850` and the zero-padded `00000000/01939990`); formatting gives the short form.
 * Always compare with `compare`/`max`, never as strings.
 */
export type Lsn = bigint & { readonly __lsn: unique symbol };

const LSN_RE = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/;

export const ZERO_LSN = 0n as Lsn;

export function parseLsn(text: string): Lsn {
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
