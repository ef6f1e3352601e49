/**
 * Acceptance 4 and 8: the schedule (every 2 s, runs never overlap, skipped outside the maintenance
 * window) and the operator's hooks (a failing pre-hook stops the run; the post-hook gets id and status).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { silentLogger } from '../../shared/log';
import { SnapshotService } from '../../backup-server/snapshot/snapshot-service';
import { waitFor } from '../harness/db';
import { entries, makeConfig, makeReplica, type TestReplica, tempDir } from './fixture';

function hhmm(d: Date): string {
  return d.toISOString().slice(11, 16);
}

describe('snapshot schedule and hooks', () => {
  const dir = tempDir('snaps');
  const stateDir = tempDir('state');
  let a: TestReplica;
  let b: TestReplica;
  let service: SnapshotService | null = null;

  beforeAll(async () => {
    [a, b] = await Promise.all([
      makeReplica('sched-a', { tables: 3 }),
      makeReplica('sched-b', { tables: 3 }),
    ]);
  });

  afterEach(async () => {
    await service?.stop();
    service = null;
  });

  afterAll(async () => {
    await Promise.all([a?.drop(), b?.drop()]);
    fs.rmSync(dir, { recursive: true, force: true });
    fs.rmSync(stateDir, { recursive: true, force: true });
  });

  const sources = () => [
    { name: 'sched-a', url: a.url },
    { name: 'sched-b', url: b.url },
  ];

  it('a schedule firing every 2 s makes snapshots of every source and never runs two at once', async () => {
    const config = makeConfig({
      dir,
      stateDir: path.join(stateDir, 'every-2s'),
      sources: sources(),
      snapshots: { schedule: '*/2 * * * * *', timezone: 'UTC', faultInjection: { tableCopyDelayMs: 200 } },
    });
    service = new SnapshotService({ config, logger: silentLogger() });
    service.startSchedule();
    const s = service;
    await waitFor(
      'two scheduled snapshots of each source',
      async () => {
        const ok = (await s.history()).filter((r) => r.status === 'ok');
        return ['sched-a', 'sched-b'].every((src) => ok.filter((r) => r.source === src).length >= 2);
      },
      12_000,
    );
    await service.stop();
    const runs = (await s.history()).filter((r) => r.status !== 'skipped').reverse();
    expect(runs.every((r) => r.trigger === 'schedule' && r.status === 'ok')).toBe(true);
    for (let i = 1; i < runs.length; i++) {
      expect(Date.parse(runs[i].startedAt)).toBeGreaterThanOrEqual(Date.parse(runs[i - 1].finishedAt));
    }
    expect((await s.list('sched-a')).length).toBeGreaterThanOrEqual(2);
    expect(entries(dir, 'sched-a').filter((e) => e.startsWith('.'))).toEqual([]);
  });

  it('scheduled runs outside the maintenance window are recorded as skipped', async () => {
    const now = Date.now();
    const config = makeConfig({
      dir,
      stateDir: path.join(stateDir, 'window'),
      sources: [{ name: 'sched-a', url: a.url }],
      snapshots: {
        schedule: '* * * * * *',
        timezone: 'UTC',
        maintenanceWindow: {
          start: hhmm(new Date(now + 2 * 3600_000)),
          end: hhmm(new Date(now + 3 * 3600_000)),
        },
      },
    });
    const before = (await new SnapshotService({ config, logger: silentLogger() }).list('sched-a')).length;
    service = new SnapshotService({ config, logger: silentLogger() });
    service.startSchedule();
    const s = service;
    await waitFor('two skipped runs', async () => (await s.history()).length >= 2, 8000);
    await service.stop();
    const history = await s.history();
    for (const r of history) {
      expect(r).toMatchObject({ status: 'skipped', trigger: 'schedule', id: null, source: 'sched-a' });
      expect(r.error).toMatch(/^outside the maintenance window \d\d:\d\d–\d\d:\d\d UTC$/);
    }
    expect((await s.list('sched-a')).length).toBe(before);
  });

  it('a pre-hook exiting 1 stops the run with its stderr in the history; the post-hook gets id and status', async () => {
    const out = path.join(stateDir, 'post-hook.txt');
    const hooksConfig = (pre: string | undefined, url = a.url) =>
      makeConfig({
        dir,
        stateDir: path.join(stateDir, 'hooks'),
        sources: [{ name: 'sched-a', url }],
        snapshots: {
          hooks: {
            pre,
            post: `printf '%s|%s|%s\\n' "$PGFERRY_SNAPSHOT_ID" "$PGFERRY_SNAPSHOT_STATUS" "$PGFERRY_SOURCE" >> ${out}`,
          },
        },
      });
    const refusing = new SnapshotService({
      config: hooksConfig('echo "backup volume is not mounted" >&2; exit 1'),
      logger: silentLogger(),
    });
    const before = entries(dir, 'sched-a');
    const stopped = await refusing.createSnapshot('sched-a');
    expect(stopped.record).toMatchObject({ status: 'failed', id: null, errorCode: 'SNAPSHOT_FAILED' });
    expect(stopped.record.error).toContain('pre-hook exited with 1: backup volume is not mounted');
    expect(stopped.record.hooks.pre?.stderr).toBe('backup volume is not mounted\n');
    expect(stopped.record.hooks.post).toBeUndefined();
    expect(entries(dir, 'sched-a')).toEqual(before);
    expect(fs.existsSync(out)).toBe(false);
    expect((await refusing.history())[0]).toEqual(stopped.record);

    const ok = await new SnapshotService({
      config: hooksConfig('exit 0'),
      logger: silentLogger(),
    }).createSnapshot('sched-a');
    expect(ok.record.status).toBe('ok');
    const broken = a.url.replace(/\/[^/]+$/, '/no_such_database');
    const failed = await new SnapshotService({
      config: hooksConfig(undefined, broken),
      logger: silentLogger(),
    }).createSnapshot('sched-a');
    expect(failed.record).toMatchObject({ status: 'failed', errorCode: 'REPLICA_UNAVAILABLE' });
    expect(fs.readFileSync(out, 'utf8')).toBe(`${ok.record.id}|ok|sched-a\n|failed|sched-a\n`);
    expect(failed.record.hooks.post?.exitCode).toBe(0);
  });
});
