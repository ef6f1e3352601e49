/**
 * Row 2: streaming apply under `pgbench -n -c 4 -j 2 -T <seconds>` (TPC-B-like) on the primary, pgferry and
 * the native subscription in alternating runs. Per run: the apply rate (source transactions / seconds from the
 * start of the load until the replica caught up), the end-to-end lag of markers by applied_at (the native
 * baseline's measure) and by first visibility on the replica (polled every 10 ms), and the catch-up time.
 * Each run ends with the pgbench tables compared on both sides.
 */
import type { Cluster } from '../harness/cluster';
import { checkpoint, now, pgbenchRun, sleep, sql } from './bench-env';
import { CpuMeter, formatCpu } from './cpu-usage';
import {
  insertMarker,
  type Lag,
  lagOf,
  MarkerWatcher,
  MarkerWriter,
  markerTimes,
  roundtrip,
} from './markers';
import { type BenchRow, makeRow, median } from './row';
import { consistent, type Replicator } from './stream-setup';

export interface TpcbOptions {
  primary: Cluster;
  replica: Cluster;
  reps: Replicator[];
  runs: number;
  seconds: number;
  warmupSeconds: number;
  log: (msg: string) => void;
}

interface TpcbRun {
  /** CPU use of each pipeline stage during the load */
  cpu: string;
  tps: number;
  applyTps: number;
  catchupS: number;
  applied: Lag;
  visible: Lag;
}

const CLIENTS = 4;
const THREADS = 2;
/** lag p99 may be at most 1.5x native's: ratio native/pgferry >= 1/1.5 */
const LAG_TARGET = 1 / 1.5;

async function runTpcb(o: TpcbOptions, r: Replicator): Promise<TpcbRun> {
  await sql(r.primaryUrl, 'VACUUM pgbench_branches, pgbench_tellers');
  await sql(r.primaryUrl, 'TRUNCATE pgbench_history');
  await checkpoint(o.primary, o.replica);
  const startId = await roundtrip(r.primaryUrl, r.replicaUrl);
  const watcher = await MarkerWatcher.start(r.replicaUrl, startId, 10);
  const writer = await MarkerWriter.start(r.primaryUrl, 200);
  await sleep(500);
  const meter = new CpuMeter(await r.stages());
  const wallStart = Date.now();
  const t0 = now();
  const txns = await pgbenchRun(o.primary, r.primaryDb, {
    clients: CLIENTS,
    threads: THREADS,
    seconds: o.seconds,
  });
  const loadS = (now() - t0) / 1000;
  const cpu = formatCpu(meter.read());
  const wallEnd = Date.now();
  await writer.stop();
  const fin = await insertMarker(r.primaryUrl);
  const finSeen = await watcher.waitFor(fin.id, 600_000);
  await watcher.stop();
  const catchupS = Math.max(0, (finSeen - wallEnd) / 1000);
  const { ts, appliedAt } = await markerTimes(r.primaryUrl, r.replicaUrl, startId, fin.id);
  const applied: number[] = [];
  const visible: number[] = [];
  for (const [id, t] of ts) {
    if (t < wallStart || t > wallEnd) continue;
    applied.push((appliedAt.get(id) ?? Number.NaN) - t);
    const seen = watcher.seenAt.get(id);
    if (seen === undefined) throw new Error(`${r.name}: marker ${id} was never seen on the replica`);
    visible.push(seen - t);
  }
  await consistent(r);
  return {
    cpu,
    tps: txns / loadS,
    applyTps: txns / (loadS + catchupS),
    catchupS,
    applied: lagOf(applied),
    visible: lagOf(visible),
  };
}

const f1 = (x: number) => x.toFixed(1);
const f2 = (x: number) => x.toFixed(2);

export async function benchTpcb(o: TpcbOptions): Promise<BenchRow[]> {
  const results: Record<Replicator['name'], TpcbRun[]> = { pgferry: [], native: [] };
  for (const r of o.warmupSeconds > 0 ? o.reps : []) {
    await pgbenchRun(o.primary, r.primaryDb, {
      clients: CLIENTS,
      threads: THREADS,
      seconds: o.warmupSeconds,
    });
    await roundtrip(r.primaryUrl, r.replicaUrl);
  }
  for (let run = 1; run <= o.runs; run++) {
    for (const r of run % 2 ? o.reps : [...o.reps].reverse()) {
      const x = await runTpcb(o, r);
      results[r.name].push(x);
      o.log(
        `streaming run ${run}/${o.runs} ${r.name}: primary ${f1(x.tps)} tps, applied ${f1(x.applyTps)} tps, ` +
          `catch-up ${f2(x.catchupS)} s, lag ms applied_at p50/p99/max ${f2(x.applied.p50)}/${f2(x.applied.p99)}/${f2(x.applied.max)}, ` +
          `visible ${f2(x.visible.p50)}/${f2(x.visible.p99)}/${f2(x.visible.max)} (${x.applied.n} markers); ` +
          `CPU during the load: ${x.cpu}`,
      );
    }
  }
  const med = (name: Replicator['name'], pick: (x: TpcbRun) => number) => median(results[name].map(pick));
  const both = (pick: (x: TpcbRun) => number, fmt: (x: number) => string) =>
    `pgferry ${results.pgferry.map((x) => fmt(pick(x))).join('/')}, native ${results.native.map((x) => fmt(pick(x))).join('/')}`;
  const load = `pgbench -c ${CLIENTS} -j ${THREADS} -T ${o.seconds}`;
  const lagRow = (what: string, pick: (x: TpcbRun) => number, target: number, notes: string): BenchRow =>
    makeRow({
      name: `streaming lag ${what}`,
      unit: 'ms',
      pgferry: med('pgferry', pick),
      peer: med('native', pick),
      peerName: 'native subscription',
      target,
      higherIsBetter: false,
      runs: o.runs,
      notes: `${notes}; runs ${both(pick, f2)}`,
    });
  const appliedNote = 'marker applied_at - primary ts, every 200 ms';
  const visibleNote =
    'marker first seen on the replica (polled every 10 ms) - primary ts: includes commit delay';
  return [
    makeRow({
      name: `streaming apply, ${load}`,
      unit: 'tx/s',
      pgferry: med('pgferry', (x) => x.applyTps),
      peer: med('native', (x) => x.applyTps),
      peerName: 'native subscription',
      target: 1,
      higherIsBetter: true,
      runs: o.runs,
      notes: `source transactions / (load + catch-up); primary tps ${both((x) => x.tps, f1)}; catch-up s ${both((x) => x.catchupS, f2)}`,
    }),
    lagRow('p50 (applied_at)', (x) => x.applied.p50, 0, appliedNote),
    lagRow('p99 (applied_at)', (x) => x.applied.p99, LAG_TARGET, appliedNote),
    lagRow('max (applied_at)', (x) => x.applied.max, 0, appliedNote),
    lagRow('p50 (visible)', (x) => x.visible.p50, 0, visibleNote),
    lagRow('p99 (visible)', (x) => x.visible.p99, LAG_TARGET, visibleNote),
  ];
}
