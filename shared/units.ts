/** Parsing of human-friendly sizes ("10GiB", "512MB", "1048576") into bytes. */
const SIZE_RE = /^\s*(\d+(?:\.\d+)?)\s*([KMGTP]?i?B?)?\s*$/i;
const FACTORS: Record<string, number> = {
  '': 1,
  B: 1,
  K: 1024,
  KB: 1000,
  KIB: 1024,
  M: 1024 ** 2,
  MB: 1000 ** 2,
  MIB: 1024 ** 2,
  G: 1024 ** 3,
  GB: 1000 ** 3,
  GIB: 1024 ** 3,
  T: 1024 ** 4,
  TB: 1000 ** 4,
  TIB: 1024 ** 4,
};

export function parseBytes(value: string | number): number {
  if (typeof value === 'number') {
    if (!Number.isFinite(value) || value < 0)
      throw new Error(`invalid size ${value}: expected a non-negative number of bytes`);
    return Math.floor(value);
  }
  const m = SIZE_RE.exec(value);
  const unit = (m?.[2] ?? '').toUpperCase();
  if (!m || !(unit in FACTORS)) {
    throw new Error(
      `invalid size "${value}": expected bytes or a number with a unit, e.g. 10GiB, 512MB, 1048576`,
    );
  }
  return Math.floor(Number(m[1]) * FACTORS[unit]);
}

export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes;
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}
