/**
 * Row 1: the initial copy of a `pgbench -i -s <scale>` database onto the replica cluster, three ways, runs
 * interleaved after one untimed warm-up pass (fresh clusters first create their WAL files):
 *  - pgferry: from the agent's start until it reports the server applied the copy (schema, binary COPY,
 *    indexes, swap into place);
 *  - a native subscription: schema pre-created from pg_dump --schema-only, CREATE SUBSCRIPTION until
 *    every table is 'r' (ready);
 *  - `pg_dump -Fc | pg_restore` into an empty database.
 * Every copy is checked against the source's exact row counts.
 */
import type { Cluster } from '../harness/cluster';
import {
  checkpoint,
  copySchema,
  dropDatabase,
  dropInactiveSlots,
  dumpPipe,
  freshDatabase,
  nativeSubscriptionGate,
  nativeSyncDone,
  now,
  pgbenchInit,
  removeAgentObjects,
  rowCounts,
  sleep,
  sql,
  userTables,
  value,
} from './bench-env';
import { type CpuRoot, formatCpu, postmasterPid, TreeCpuMeter } from './cpu-usage';
import type { PgferryRig } from './pgferry-rig';
import { type BenchRow, makeRow, median } from './row';

export const SYNC_SOURCE = 'sync';
const NATIVE_DB = 'native_sync';
const DUMP_DB = 'dump_sync';

type Method = 'pgferry' | 'native' | 'dump_pipe';

export interface InitialCopyOptions {
  primary: Cluster;
  replica: Cluster;
  rig: PgferryRig;
  scale: number;
  runs: number;
  /** one untimed pass of every method first (fresh clusters create their WAL files on first use) */
  warmup: boolean;
  log: (msg: string) => void;
}

export async function prepareSyncSource(primary: Cluster, scale: number): Promise<void> {
  const url = await freshDatabase(primary, SYNC_SOURCE);
  await pgbenchInit(primary, SYNC_SOURCE, scale);
  await sql(url, 'VACUUM ANALYZE');
  await sql(url, 'CREATE PUBLICATION bench_pub FOR ALL TABLES');
  await checkpoint(primary);
}

export async function benchInitialCopy(o: InitialCopyOptions): Promise<BenchRow[]> {
  const { primary, replica, rig, log } = o;
  const srcUrl = primary.url(SYNC_SOURCE);
  const tables = await userTables(srcUrl);
  const want = await rowCounts(srcUrl, tables);
  const rows = want.split(' ').reduce((n, kv) => n + Number(kv.slice(kv.lastIndexOf('=') + 1)), 0);
  const mb = Number(
    await value(srcUrl, 'SELECT sum(pg_total_relation_size(relid)) / 1048576.0 FROM pg_stat_user_tables'),
  );

  const verify = async (method: Method, url: string) => {
    const got = await rowCounts(url, tables);
    if (got !== want) throw new Error(`initial copy by ${method} is wrong: got ${got}, want ${want}`);
  };

  const clusterRoots = () =>
    new Map<string, CpuRoot>([
      ['primary cluster', { pid: () => postmasterPid(primary.dataDir), live: true }],
      ['replica cluster', { pid: () => postmasterPid(replica.dataDir), live: true }],
    ]);
  let meter: TreeCpuMeter | null = null;
  let cpu = '';
  const startMeter = (m: Method) => {
    const roots = clusterRoots();
    if (m === 'dump_pipe') roots.set('pg_dump + pg_restore', { pid: () => process.pid, live: false });
    if (m === 'pgferry') {
      roots.set('agent (+ pg_dump)', { pid: () => rig.pidOrNull('agent', SYNC_SOURCE), live: false });
      roots.set('server', { pid: () => rig.pidOrNull('server'), live: false });
    }
    meter = new TreeCpuMeter(roots);
  };
  const stopMeter = async () => {
    await sleep(300); // backends that just ended are reaped (their CPU moves into the postmaster's)
    cpu = meter ? formatCpu(meter.read()) : '';
  };

  const methods: Record<Method, () => Promise<number>> = {
    native: async () => {
      const url = await freshDatabase(replica, NATIVE_DB);
      await copySchema(primary, SYNC_SOURCE, replica, NATIVE_DB);
      await checkpoint(primary, replica);
      await nativeSubscriptionGate.wait();
      startMeter('native');
      const t0 = now();
      await sql(
        url,
        `CREATE SUBSCRIPTION native_sync CONNECTION 'host=127.0.0.1 port=${primary.port} dbname=${SYNC_SOURCE} user=postgres' PUBLICATION bench_pub`,
      );
      await nativeSyncDone(url, 'native_sync', 3_600_000);
      const t = (now() - t0) / 1000;
      await stopMeter();
      await verify('native', url);
      await sql(url, 'DROP SUBSCRIPTION native_sync');
      nativeSubscriptionGate.mark();
      await dropDatabase(replica, NATIVE_DB);
      return t;
    },
    dump_pipe: async () => {
      const url = await freshDatabase(replica, DUMP_DB);
      await checkpoint(primary, replica);
      startMeter('dump_pipe');
      const t0 = now();
      await dumpPipe(primary, SYNC_SOURCE, replica, DUMP_DB);
      const t = (now() - t0) / 1000;
      await stopMeter();
      await verify('dump_pipe', url);
      await dropDatabase(replica, DUMP_DB);
      return t;
    },
    pgferry: async () => {
      for (const suffix of ['', '__sync', '__old'])
        await dropDatabase(replica, `pgferry_${SYNC_SOURCE}${suffix}`);
      await dropInactiveSlots(primary, SYNC_SOURCE);
      await checkpoint(primary, replica);
      startMeter('pgferry');
      const t0 = now();
      rig.startAgent(SYNC_SOURCE);
      try {
        await rig.initialCopyApplied(SYNC_SOURCE, 3_600_000);
      } catch (e) {
        throw new Error(`${(e as Error).message}\n${rig.logs()}`);
      }
      const t = (now() - t0) / 1000;
      await stopMeter();
      await rig.stopAgent(SYNC_SOURCE);
      await verify('pgferry', rig.replicaUrl(SYNC_SOURCE));
      await sleep(200);
      await dropInactiveSlots(primary, SYNC_SOURCE);
      await removeAgentObjects(srcUrl);
      await dropDatabase(replica, `pgferry_${SYNC_SOURCE}`);
      return t;
    },
  };

  const order: Method[] = ['native', 'dump_pipe', 'pgferry'];
  const times: Record<Method, number[]> = { pgferry: [], native: [], dump_pipe: [] };
  for (let run = o.warmup ? 0 : 1; run <= o.runs; run++) {
    // rotated, so no method follows itself (two subscriptions in a row would meet the launcher's throttle)
    for (const m of [...order.slice(run % 3), ...order.slice(0, run % 3)]) {
      const t = await methods[m]();
      log(
        `initial copy ${run === 0 ? 'warm-up' : `run ${run}/${o.runs}`} ${m}: ${t.toFixed(2)} s; CPU ${cpu}`,
      );
      if (run > 0) times[m].push(t);
    }
  }

  const rate = (m: Method) => rows / median(times[m]);
  const runsText = (m: Method) => times[m].map((t) => t.toFixed(2)).join('/');
  const common = `${rows.toLocaleString('en')} rows, ${mb.toFixed(0)} MB; seconds pgferry ${runsText('pgferry')}`;
  const row = (peer: Exclude<Method, 'pgferry'>, peerName: string): BenchRow =>
    makeRow({
      name: `initial copy, pgbench -s ${o.scale}`,
      unit: 'rows/s',
      pgferry: rate('pgferry'),
      peer: rate(peer),
      peerName,
      target: 1,
      higherIsBetter: true,
      runs: o.runs,
      notes: `${common}, ${peer} ${runsText(peer)}`,
    });
  return [row('native', 'native subscription'), row('dump_pipe', 'pg_dump -Fc | pg_restore')];
}
