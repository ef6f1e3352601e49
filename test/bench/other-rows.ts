/**
 * Row 5: the rows other parts of pgferry contribute (snapshot full and incremental, restore, FTP download),
 * each from its own module beside this one, run on a cluster of their own with the baseline's settings.
 * A module that is not there (yet) is reported as not measured instead of breaking the run.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Cluster } from '../harness/cluster';
import { BASELINE_SETTINGS } from './bench-env';
import type { BenchRow } from './row';

type Rows = BenchRow | BenchRow[];
type ClusterBench = (o: { scale: number; runs: number; cluster: Cluster }) => Promise<Rows>;
type FtpBench = (o: { bytes: number; runs: number; workDir: string }) => Promise<Rows>;

/** The exported function `name` of the compiled module `file` beside this one, or why there is none. */
function load<T>(file: string, name: string): T | string {
  const js = path.join(__dirname, `${file}.js`);
  if (!fs.existsSync(js)) return `test/bench/${file}.ts is not there`;
  const mod: unknown = require(js);
  const fn = typeof mod === 'object' && mod !== null ? (mod as Record<string, unknown>)[name] : undefined;
  return typeof fn === 'function' ? (fn as T) : `test/bench/${file}.ts exports no ${name}()`;
}

export interface OtherOptions {
  scale: number;
  runs: number;
  quick: boolean;
  work: string;
  log: (msg: string) => void;
  skipped: { section: string; reason: string }[];
  errors: { section: string; error: string }[];
}

export async function otherRows(o: OtherOptions): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  const add = (r: Rows) => rows.push(...(Array.isArray(r) ? r : [r]));
  const benches: { section: string; file: string; fn: string }[] = [
    { section: 'snapshot', file: 'snapshot', fn: 'benchSnapshot' },
    { section: 'restore', file: 'restore', fn: 'benchRestore' },
  ];
  const needCluster = benches.map((b) => ({ ...b, run: load<ClusterBench>(b.file, b.fn) }));
  const ftp = load<FtpBench>('ftp-download', 'benchFtpDownload');
  for (const b of [...needCluster, { section: 'FTP download', run: ftp }])
    if (typeof b.run === 'string') o.skipped.push({ section: b.section, reason: b.run });

  if (needCluster.some((b) => typeof b.run !== 'string')) {
    o.log('snapshot and restore rows: creating their cluster');
    const cluster = await Cluster.create({ name: 'bench-others', settings: BASELINE_SETTINGS });
    try {
      for (const b of needCluster) {
        if (typeof b.run === 'string') continue;
        o.log(`${b.section}: pgbench -s ${o.scale}, ${o.runs} runs`);
        try {
          add(await b.run({ scale: o.scale, runs: o.runs, cluster }));
        } catch (e) {
          o.log(`${b.section} failed: ${(e as Error).stack}`);
          o.errors.push({ section: b.section, error: (e as Error).message });
        }
      }
    } finally {
      await cluster.destroy();
    }
  }
  if (typeof ftp !== 'string') {
    const bytes = o.quick ? 128 * 1024 ** 2 : 1024 ** 3;
    o.log(`FTP download: ${bytes / 1024 ** 2} MiB, ${o.runs} runs`);
    try {
      add(await ftp({ bytes, runs: o.runs, workDir: o.work }));
    } catch (e) {
      o.log(`FTP download failed: ${(e as Error).stack}`);
      o.errors.push({ section: 'FTP download', error: (e as Error).message });
    }
  }
  return rows;
}
