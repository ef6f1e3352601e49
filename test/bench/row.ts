/** One row of the benchmark table: a pgferry figure beside its peer's, measured in the same run. */
export interface BenchRow {
  /** e.g. "FTP download 1 GiB" */
  name: string;
  /** what the figures measure, e.g. "MB/s" or "s" */
  unit: string;
  /** medians of the runs */
  pgferry: number;
  peer: number;
  peerName: string;
  /** pgferry / peer when higher is better, peer / pgferry when lower is better: ≥ 1 means pgferry is ahead */
  ratio: number;
  /** the target for ratio, e.g. 0.5 */
  target: number;
  higherIsBetter: boolean;
  runs: number;
  notes?: string;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export function makeRow(r: Omit<BenchRow, 'ratio'>): BenchRow {
  const ratio = r.higherIsBetter ? r.pgferry / r.peer : r.peer / r.pgferry;
  return { ...r, ratio };
}
