/**
 * Acceptance (issue 6, item 3): with one snapshot today, `pgferry status --json` carries every field with
 * true values; status exits 1 when the source is DEAD, when the newest snapshot is older than the
 * schedule implies, and when free space is under a threshold — each alone.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseLsn } from '../../shared/lsn';
import { serverAttention } from '../../shared/status/attention';
import type { ServerStatusReport } from '../../shared/status/report';
import { fetchStatus } from '../../shared/status-http';
import { freePort } from '../harness/cluster';
import { createDatabase, dropDatabase, query, sharedClusters, uniqueName, waitFor } from '../harness/db';
import { replicaAppliedLsn, waitUntilEqual } from '../support/compare';
import {
  agentConfigFor,
  type Proc,
  serverConfigFor,
  spawnCli,
  tempDir,
  waitForOutput,
  writeYaml,
} from '../support/pgferry';

const { primary, backup } = sharedClusters();
const source = { name: 'daily', password: 'pw-daily', database: uniqueName('src_daily') };
const REPLICA = backup.url('pgferry_daily');

afterAll(async () => {
  await dropDatabase(primary, source.database);
  await dropDatabase(backup, 'pgferry_daily');
});

type StatusJson = ServerStatusReport & { ok: boolean; attention: string[] };

async function status(yaml: string, json = true): Promise<{ code: number | null; out: string }> {
  const p = spawnCli(['status', '--config', yaml, ...(json ? ['--json'] : [])]);
  const code = await p.exited;
  return { code, out: p.output() };
}

it('answers the morning questions with true values, and exits 1 for a DEAD source, a late snapshot, low free space', async () => {
  const url = await createDatabase(primary, source.database);
  await query(url, 'CREATE TABLE t (id serial PRIMARY KEY, v text)');
  await query(url, "INSERT INTO t (v) SELECT 'row ' || i FROM generate_series(1, 500) i");
  const dir = tempDir('status');
  const snapDir = path.join(dir, 'snapshots');
  fs.mkdirSync(snapDir);
  const httpPort = await freePort();
  const base = await serverConfigFor(backup, [source], dir, {
    heartbeat: { deadAfterSeconds: 2 },
    snapshots: { dir: snapDir, enabled: true, schedule: '0 0 1 1 *', timezone: 'UTC' },
    status: { snapshotGraceSeconds: 0 },
    http: { enabled: true, host: '127.0.0.1', port: httpPort },
    log: { level: 'info', format: 'json' },
  });
  const serverYaml = path.join(dir, 'server.yaml');
  const startServer = async (extra: Record<string, unknown> = {}): Promise<Proc> => {
    writeYaml(dir, 'server.yaml', {
      ...base,
      ...extra,
      snapshots: { ...(base.snapshots as object), ...((extra.snapshots as object) ?? {}) },
    });
    const p = spawnCli(['server', '--config', serverYaml]);
    await waitForOutput(p, /backup server started/).catch((e: Error) => {
      throw new Error(`${e.message}\n${p.output()}`);
    });
    return p;
  };
  const live = () =>
    waitFor('the source to be LIVE', async () => {
      const st = (await fetchStatus('127.0.0.1', httpPort)) as ServerStatusReport;
      return st.sources[0].state === 'LIVE' && st.sources[0].phase === 'streaming';
    });
  let server = await startServer();
  const agentYaml = writeYaml(
    dir,
    'agent.yaml',
    agentConfigFor(primary, source, (base.listen as { port: number }).port, {
      heartbeat: { intervalSeconds: 0.5 },
      log: { level: 'info', format: 'json' },
    }),
  );
  const agent = spawnCli(['agent', '--config', agentYaml]);
  try {
    await live();
    await query(url, "INSERT INTO t (v) SELECT 'more ' || i FROM generate_series(1, 100) i");
    await waitUntilEqual(url, REPLICA);

    const snap = spawnCli(['snapshot', 'create', '--config', serverYaml, '--json']);
    expect(await snap.exited).toBe(0);
    const run = (JSON.parse(snap.output().slice(snap.output().indexOf('['))) as { id: string }[])[0];
    const manifest = JSON.parse(
      fs.readFileSync(path.join(snapDir, 'daily', run.id, 'manifest.json'), 'utf8'),
    ) as {
      finishedAt: string;
      startedAt: string;
      totalBytes: number;
    };

    // all well: every field, with values checked against the database and the file system (the applied
    // LSN can move while status runs: an idle source is advanced as the primary's WAL moves on)
    const appliedBefore = await replicaAppliedLsn(REPLICA);
    const [ok, human] = await Promise.all([status(serverYaml), status(serverYaml, false)]);
    const appliedAfter = await replicaAppliedLsn(REPLICA);
    const st = JSON.parse(ok.out) as StatusJson;
    expect({ code: ok.code, attention: st.attention }).toEqual({ code: 0, attention: [] });
    const s = st.sources[0];
    expect(s).toMatchObject({ source: 'daily', connected: true, state: 'LIVE', phase: 'streaming' });
    const lsn = (x: string | null) => parseLsn(x ?? '0/0');
    expect(lsn(s.appliedLsn)).toBeGreaterThanOrEqual(lsn(appliedBefore));
    expect(lsn(s.appliedLsn)).toBeLessThanOrEqual(lsn(appliedAfter));
    expect(s.lagBytes).toEqual(expect.any(Number));
    expect(s.lagSeconds).toEqual(expect.any(Number));
    expect(Date.now() - Date.parse(s.lastAppliedAt ?? '')).toBeLessThan(60_000);
    expect(s.transitions.map((x) => x.to)).toEqual(['LIVE']);
    expect(st.snapshots).toMatchObject({
      completedToday: 1,
      lastFinishedAt: manifest.finishedAt,
      count: 1,
      totalBytes: manifest.totalBytes,
      nextRunAt: `${new Date().getUTCFullYear() + 1}-01-01T00:00:00.000Z`,
      lastRun: { source: 'daily', id: run.id, status: 'ok', error: null },
      error: null,
    });
    expect(st.snapshots.sources[0]).toMatchObject({ newestId: run.id, late: false, recentRuns: { ok: 1 } });
    const fsStat = fs.statfsSync(snapDir);
    expect(st.disk.totalBytes).toBe(fsStat.blocks * fsStat.bsize);
    expect(Math.abs((st.disk.freeBytes ?? 0) - fsStat.bavail * fsStat.bsize)).toBeLessThan(256 * 1024 ** 2);
    expect(st.disk).toMatchObject({
      path: snapDir,
      minFreeBytes: 10 * 1024 ** 3,
      minFreePercent: 10,
      belowThreshold: false,
      error: null,
    });
    expect(st.disk.bytesAboveMinFree).toBe((st.disk.freeBytes ?? 0) - 10 * 1024 ** 3);
    expect((st.disk.usedPercent ?? 0) + (st.disk.freePercent ?? 0)).toBeCloseTo(100, 1);
    expect(st.log.errors).toBe(0);
    expect(st.log.warnings).toBeGreaterThanOrEqual(1);
    expect(st.log.recent.map((e) => e.message).join('\n')).toMatch(/TLS is off/);
    expect(st.ftpDefaultPassword).toBe(false);
    expect(human.out).toContain('Snapshots completed today: 1');
    expect(human.out).toContain(
      `Last snapshot finished at ${new Date(manifest.finishedAt).toLocaleString('sv-SE')}`,
    );
    expect(human.out).toMatch(/minFreeBytes 10\.0 GiB/);

    // a DEAD source
    agent.kill('SIGSTOP');
    await waitFor(
      'DEAD',
      async () => ((await fetchStatus('127.0.0.1', httpPort)) as StatusJson).sources[0].state === 'DEAD',
    );
    const dead = await status(serverYaml);
    expect(dead.code).toBe(1);
    expect((JSON.parse(dead.out) as StatusJson).attention).toEqual([
      expect.stringMatching(/^source daily is DEAD: no heartbeat since/),
    ]);
    agent.kill('SIGCONT');
    await live();
    expect(serverAttention((await fetchStatus('127.0.0.1', httpPort)) as ServerStatusReport)).toEqual([]);

    // the server was down when the schedule fired: the newest snapshot is older than the schedule implies
    server.kill('SIGTERM');
    expect(await server.exited).toBe(0);
    const fired = new Date(Date.now() - 1000);
    expect(fired.getTime()).toBeGreaterThan(Date.parse(manifest.startedAt));
    server = await startServer({
      snapshots: {
        schedule: `${fired.getUTCSeconds()} ${fired.getUTCMinutes()} ${fired.getUTCHours()} * * *`,
      },
    });
    await live();
    const lateRun = await status(serverYaml);
    expect(lateRun.code).toBe(1);
    const late = JSON.parse(lateRun.out) as StatusJson;
    expect(late.attention).toEqual([
      expect.stringMatching(/^source daily: the newest snapshot .* is older than the schedule/),
    ]);
    expect(late.snapshots.sources[0]).toMatchObject({
      late: true,
      dueSince: new Date(Math.floor(fired.getTime() / 1000) * 1000).toISOString(),
    });

    // free space under a threshold
    server.kill('SIGTERM');
    expect(await server.exited).toBe(0);
    server = await startServer({ snapshots: { minFreeBytes: '1000TiB' } });
    await live();
    const low = await status(serverYaml);
    expect(low.code).toBe(1);
    const lowJson = JSON.parse(low.out) as StatusJson;
    expect(lowJson.attention).toEqual([expect.stringMatching(/^free space on .* is .*under minFreeBytes/)]);
    expect(lowJson.disk.belowThreshold).toBe(true);
    expect(lowJson.disk.bytesAboveMinFree).toBeLessThan(0);
  } finally {
    agent.kill('SIGCONT');
    agent.kill('SIGTERM');
    await agent.exited;
    server.kill('SIGTERM');
    await server.exited;
  }
});
