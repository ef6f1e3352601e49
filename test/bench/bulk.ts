/**
 * Row 3: one transaction inserting <rows> rows on the primary
 * (`INSERT INTO bulk_t SELECT g, g % 1000, md5(g::text), clock_timestamp() FROM generate_series(1, n) g`),
 * timed from its commit until the last row is visible on the replica (polled every 50 ms; the rows become
 * visible at once, at the apply commit). pgferry and the native subscription in alternating runs; the table
 * is truncated (and the truncate replicated) between runs.
 *
 * The native subscription runs with PostgreSQL's defaults (`streaming = off`: the walsender spills the
 * transaction on the primary and sends it after the commit). pgferry streams a large transaction while it
 * runs, as a subscription with `streaming = on` does, and the backup server applies it as it arrives; so a
 * second row, for information, compares pgferry with that subscription too (the same subscription, altered
 * for its runs).
 */
import type { Client } from 'pg';
import type { Cluster } from '../harness/cluster';
import { checkpoint, connect, sleep, value } from './bench-env';
import { CpuMeter, formatCpu } from './cpu-usage';
import { roundtrip } from './markers';
import { type BenchRow, makeRow, median } from './row';
import { NATIVE_SUBSCRIPTION, type Replicator } from './stream-setup';

export interface BulkOptions {
  primary: Cluster;
  replica: Cluster;
  reps: Replicator[];
  runs: number;
  rows: number;
  log: (msg: string) => void;
}

interface BulkRun {
  /** CPU use of each pipeline stage from the start of the insert until the rows were visible */
  cpu: string;
  insertS: number;
  visibleS: number;
  firstS: number;
  /** commit until the walsender had read past the commit record (it sent the whole transaction) */
  decodedS: number;
  /** what the slot's walsender spilled to the primary's disk and streamed during the run (MB) */
  slot: string;
}

interface SlotStats {
  spill: number;
  stream: number;
}

/** Bytes spilled and streamed so far by the slots of `r`'s source database (pg_stat_replication_slots). */
async function slotStats(c: Client, r: Replicator): Promise<SlotStats> {
  const q = await c.query<{ spill: string; stream: string }>(
    `SELECT coalesce(sum(s.spill_bytes), 0) AS spill, coalesce(sum(s.stream_bytes), 0) AS stream
       FROM pg_stat_replication_slots s JOIN pg_replication_slots USING (slot_name) WHERE database = $1`,
    [r.primaryDb],
  );
  return { spill: Number(q.rows[0].spill), stream: Number(q.rows[0].stream) };
}

const epochMs = 'extract(epoch FROM clock_timestamp()) * 1000';

/** When (epoch ms, the primary's clock) the walsender of `r` has read the WAL past `lsn`; polled every 20 ms. */
async function walsenderPassed(r: Replicator, lsn: string): Promise<number> {
  const c = await connect(r.primaryUrl, 'bench-bulk-walsender');
  try {
    const deadline = Date.now() + 1_800_000;
    for (;;) {
      const q = await c.query<{ t: string; done: boolean }>(
        `SELECT ${epochMs} AS t, coalesce(bool_or(sent_lsn >= $1::pg_lsn), false) AS done FROM pg_stat_replication WHERE application_name = $2`,
        [lsn, r.walsenderApp],
      );
      if (q.rows[0].done) return Number(q.rows[0].t);
      if (Date.now() > deadline) throw new Error(`${r.name}: the walsender did not pass ${lsn} in 30 min`);
      await sleep(20);
    }
  } finally {
    await c.end();
  }
}

async function runBulk(o: BulkOptions, r: Replicator): Promise<BulkRun> {
  const c = await connect(r.primaryUrl, 'bench-bulk');
  const d = await connect(r.replicaUrl, 'bench-bulk-poll');
  try {
    await c.query('TRUNCATE bulk_t');
    await roundtrip(r.primaryUrl, r.replicaUrl);
    const left = await value(r.replicaUrl, 'SELECT count(*) FROM bulk_t');
    if (left !== '0')
      throw new Error(`${r.name}: bulk_t still has ${left} rows on the replica after TRUNCATE`);
    await checkpoint(o.primary, o.replica);
    const slotBefore = await slotStats(c, r);
    // a streamed transaction may be applied on a replica connection of its own, opened during the run
    const meter = new CpuMeter(await r.stages(), r.stages);
    const t0 = Number((await c.query<{ t: string }>(`SELECT ${epochMs} AS t`)).rows[0].t);
    await c.query(
      `INSERT INTO bulk_t SELECT g, g % 1000, md5(g::text), clock_timestamp() FROM generate_series(1, ${o.rows}) g`,
    );
    const after = await c.query<{ t: string; lsn: string }>(
      `SELECT ${epochMs} AS t, pg_current_wal_lsn()::text AS lsn`,
    );
    const tc = Number(after.rows[0].t);
    const decoded = walsenderPassed(r, after.rows[0].lsn);
    decoded.catch(() => undefined); // awaited below; not unhandled if the replica's poll fails first
    let tv = 0;
    const deadline = Date.now() + 1_800_000;
    while (!tv) {
      const q = await d.query<{ t: string }>(`SELECT ${epochMs} AS t FROM bulk_t WHERE id = $1`, [o.rows]);
      if (q.rows.length) tv = Number(q.rows[0].t);
      else if (Date.now() > deadline)
        throw new Error(`${r.name}: the bulk transaction was not applied in 30 min`);
      else await sleep(50);
    }
    const cpu = formatCpu(meter.read());
    const slotAfter = await slotStats(c, r);
    const mb = (n: number) => (n / 1e6).toFixed(0);
    const s = await d.query<{ n: string; first: string }>(
      'SELECT count(*) AS n, extract(epoch FROM min(applied_at)) * 1000 AS first FROM bulk_t',
    );
    if (Number(s.rows[0].n) !== o.rows)
      throw new Error(`${r.name}: the replica has ${s.rows[0].n} bulk rows, want ${o.rows}`);
    return {
      cpu,
      insertS: (tc - t0) / 1000,
      visibleS: (tv - tc) / 1000,
      firstS: (Number(s.rows[0].first) - tc) / 1000,
      decodedS: ((await decoded) - tc) / 1000,
      slot: `spilled ${mb(slotAfter.spill - slotBefore.spill)} MB, streamed ${mb(slotAfter.stream - slotBefore.stream)} MB`,
    };
  } finally {
    await c.end();
    await d.end();
  }
}

/** The native subscription with `streaming` set to `on` for its runs (back to the default after). */
async function nativeStreamingRuns(o: BulkOptions, native: Replicator): Promise<BulkRun[]> {
  const out: BulkRun[] = [];
  await value(native.replicaUrl, `ALTER SUBSCRIPTION ${NATIVE_SUBSCRIPTION} SET (streaming = on)`);
  try {
    for (let run = 1; run <= o.runs; run++) {
      const x = await runBulk(o, native);
      out.push(x);
      o.log(
        `bulk run ${run}/${o.runs} native, streaming = on: commit -> visible ${x.visibleS.toFixed(2)} s, ` +
          `commit -> walsender past the commit ${x.decodedS.toFixed(2)} s, ` +
          `commit -> first row applied ${x.firstS.toFixed(2)} s; walsender ${x.slot}; CPU from the insert to visible: ${x.cpu}`,
      );
    }
  } finally {
    await value(native.replicaUrl, `ALTER SUBSCRIPTION ${NATIVE_SUBSCRIPTION} SET (streaming = off)`);
  }
  return out;
}

export async function benchBulk(o: BulkOptions): Promise<BenchRow[]> {
  const results: Record<Replicator['name'], BulkRun[]> = { pgferry: [], native: [] };
  for (let run = 1; run <= o.runs; run++) {
    for (const r of run % 2 ? o.reps : [...o.reps].reverse()) {
      const x = await runBulk(o, r);
      results[r.name].push(x);
      o.log(
        `bulk run ${run}/${o.runs} ${r.name}: insert ${x.insertS.toFixed(2)} s, commit -> visible ${x.visibleS.toFixed(2)} s, ` +
          `commit -> walsender past the commit ${x.decodedS.toFixed(2)} s, ` +
          `commit -> first row applied ${x.firstS.toFixed(2)} s; walsender ${x.slot}; CPU from the insert to visible: ${x.cpu}`,
      );
    }
  }
  const runs = (name: Replicator['name'], pick: (x: BulkRun) => number) =>
    results[name].map((x) => pick(x).toFixed(2)).join('/');
  const native = o.reps.find((r) => r.name === 'native');
  const streamed = native ? await nativeStreamingRuns(o, native) : [];
  const name = `bulk: 1 transaction of ${o.rows.toLocaleString('en')} rows, commit -> applied`;
  const pgferry = o.rows / median(results.pgferry.map((x) => x.visibleS));
  const main = makeRow({
    name,
    unit: 'rows/s',
    pgferry,
    peer: o.rows / median(results.native.map((x) => x.visibleS)),
    peerName: 'native subscription',
    target: 1,
    higherIsBetter: true,
    runs: o.runs,
    notes:
      `commit -> visible s: pgferry ${runs('pgferry', (x) => x.visibleS)}, native ${runs('native', (x) => x.visibleS)}; ` +
      `commit -> first row applied s: pgferry ${runs('pgferry', (x) => x.firstS)}, native ${runs('native', (x) => x.firstS)}; ` +
      'native with its default streaming = off',
  });
  if (!streamed.length) return [main];
  return [
    main,
    makeRow({
      name,
      unit: 'rows/s',
      pgferry,
      peer: o.rows / median(streamed.map((x) => x.visibleS)),
      peerName: 'native subscription, streaming = on',
      target: 0,
      higherIsBetter: true,
      runs: o.runs,
      notes: `commit -> visible s: native streaming = on ${streamed.map((x) => x.visibleS.toFixed(2)).join('/')}; for information: the same subscription altered to stream in-progress transactions, as pgferry does`,
    }),
  ];
}
