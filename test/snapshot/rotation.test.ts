/**
 * Acceptance 5, 6 and 9: age retention keeps each source's newest snapshot; the free-space rule deletes the
 * oldest first (thresholds above the real free space, and for real on a 64 MiB tmpfs) and a snapshot that
 * cannot fit is refused before anything is written; `rotate --dry-run` only tells.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { silentLogger } from '../../shared/log';
import { statfsProbe } from '../../backup-server/snapshot/disk-probe';
import { SnapshotService } from '../../backup-server/snapshot/snapshot-service';
import {
  applyChange,
  capturingLogger,
  cli,
  type ConfigOptions,
  entries,
  makeConfig,
  makeReplica,
  run,
  type TestReplica,
  tempDir,
  writeConfigFile,
} from './fixture';

const DAY = 86_400_000;
const MiB = 1024 * 1024;

describe('snapshot rotation', () => {
  const root = tempDir('rotation');
  const mounts: string[] = [];
  const replicas: TestReplica[] = [];
  let a: TestReplica;
  let b: TestReplica;

  async function tmpfs(name: string): Promise<string> {
    const m = path.join(root, name);
    fs.mkdirSync(m);
    await run('mount', ['-t', 'tmpfs', '-o', 'size=64m', 'tmpfs', m]);
    mounts.push(m);
    return m;
  }

  /** A replica with one table `big` of about `mib` MiB of COPY text. */
  async function bigReplica(source: string, mib: number): Promise<TestReplica> {
    const rows = Math.round((mib * MiB) / 970);
    const r = await makeReplica(source, {
      setup: async (c) => {
        await c.query('CREATE TABLE big (id int PRIMARY KEY, txt text)');
        await c.query(
          `INSERT INTO big SELECT g, repeat(md5(g::text), 30) FROM generate_series(1, ${rows}) g`,
        );
      },
    });
    replicas.push(r);
    return r;
  }

  beforeAll(async () => {
    [a, b] = await Promise.all([makeReplica('rot-a', { tables: 2 }), makeReplica('rot-b', { tables: 2 })]);
    replicas.push(a, b);
  });

  afterAll(async () => {
    for (const m of mounts) await run('umount', [m]).catch(() => run('umount', ['-l', m]));
    await Promise.all(replicas.map((r) => r.drop()));
    fs.rmSync(root, { recursive: true, force: true });
  });

  /** A service whose clock is `clock.now`, on a fresh config. */
  function serviceAt(clock: { now: number }, opts: Omit<ConfigOptions, 'sources'>, logger = silentLogger()) {
    const config = makeConfig({
      ...opts,
      sources: [
        { name: 'rot-a', url: a.url },
        { name: 'rot-b', url: b.url },
        ...replicas.slice(2).map((r) => ({ name: r.source, url: r.url })),
      ],
    });
    return new SnapshotService({ config, logger, now: () => new Date(clock.now) });
  }

  it('age retention deletes old snapshots and keeps the newest even when it is older than retentionDays', async () => {
    const dir = fs.mkdtempSync(path.join(root, 'age-'));
    const opts = { dir, stateDir: path.join(dir, '.state'), snapshots: { retentionDays: 30 } };
    const T = Date.parse('2026-06-01T03:00:00Z');
    const clock = { now: T - 20 * DAY };
    const taking = serviceAt(clock, opts);
    const ids: string[] = [];
    for (const ago of [20, 10, 2]) {
      clock.now = T - ago * DAY;
      ids.push((await taking.createSnapshot('rot-a')).record.id!);
    }
    const { logger, entries: log } = capturingLogger();
    const strict = serviceAt(clock, { ...opts, snapshots: { retentionDays: 5 } }, logger);
    clock.now = T;
    const r = await strict.rotate();
    expect(r.deletions.map((d) => [d.id, d.rule])).toEqual([
      [ids[0], 'age'],
      [ids[1], 'age'],
    ]);
    expect(r.deletions[0].reason).toBe('20.0 days old, older than retentionDays 5');
    expect(log.filter((e) => e.message.startsWith('deleted snapshot rot-a/')).map((e) => e.reason)).toEqual([
      '20.0 days old, older than retentionDays 5',
      '10.0 days old, older than retentionDays 5',
    ]);
    clock.now = T + 60 * DAY;
    expect((await strict.rotate()).deletions).toEqual([]);
    expect((await strict.list()).map((s) => s.id)).toEqual([ids[2]]);
  });

  it('rotate --dry-run prints what it would delete and why, and deletes nothing', async () => {
    const dir = fs.mkdtempSync(path.join(root, 'dry-'));
    const opts = { dir, stateDir: path.join(dir, '.state') };
    const clock = { now: Date.now() - 3 * DAY };
    const taking = serviceAt(clock, opts);
    for (const [src, ago] of [
      ['rot-a', 3],
      ['rot-b', 2],
      ['rot-a', 1],
      ['rot-b', 0.5],
    ] as const) {
      clock.now = Date.now() - ago * DAY;
      expect((await taking.createSnapshot(src)).record.status).toBe('ok');
    }
    const before = [...entries(dir, 'rot-a'), ...entries(dir, 'rot-b')];
    const [oldA, oldB] = [entries(dir, 'rot-a')[0], entries(dir, 'rot-b')[0]];
    const configFile = writeConfigFile(path.join(dir, '.state', 'server.yaml'), {
      ...opts,
      sources: [
        { name: 'rot-a', url: a.url },
        { name: 'rot-b', url: b.url },
      ],
      snapshots: { minFreeBytes: '1024TiB', retentionDays: 30 },
    });
    const out = await cli(['rotate', '--config', configFile, '--dry-run']);
    expect(out.code).toBe(0);
    const lines = out.stdout.trim().split('\n');
    expect(lines[0]).toMatch(
      new RegExp(
        `^would delete rot-a/${oldA}: free space .* is below minFreeBytes 1024\\.0 TiB; deleting the oldest`,
      ),
    );
    expect(lines[1]).toMatch(new RegExp(`^would delete rot-b/${oldB}: free space .* below minFreeBytes`));
    expect(lines).toContainEqual(
      expect.stringMatching(/^warning: .*only the newest snapshot of each source is left$/),
    );
    const json = await cli(['rotate', '--config', configFile, '--dry-run', '--json']);
    expect(JSON.parse(json.stdout)).toMatchObject({
      dryRun: true,
      deletions: [
        { source: 'rot-a', id: oldA, rule: 'free-space' },
        { source: 'rot-b', id: oldB, rule: 'free-space' },
      ],
    });
    expect([...entries(dir, 'rot-a'), ...entries(dir, 'rot-b')]).toEqual(before);
  });

  it('below the free-space thresholds rotation deletes the oldest of any source until only the newest are left', async () => {
    const dir = fs.mkdtempSync(path.join(root, 'free-'));
    const opts = { dir, stateDir: path.join(dir, '.state') };
    const clock = { now: Date.now() };
    const taking = serviceAt(clock, opts);
    for (const [src, ago] of [
      ['rot-a', 3],
      ['rot-b', 2],
      ['rot-a', 1],
      ['rot-b', 0.5],
    ] as const) {
      clock.now = Date.now() - ago * DAY;
      await taking.createSnapshot(src);
    }
    const [oldA, newA] = entries(dir, 'rot-a');
    const [oldB, newB] = entries(dir, 'rot-b');
    const { logger, entries: log } = capturingLogger();
    clock.now = Date.now();
    const real = await statfsProbe.measure(dir);
    const r = await serviceAt(
      clock,
      { ...opts, snapshots: { minFreeBytes: real.totalBytes * 2 } },
      logger,
    ).rotate();
    expect(r.deletions.map((d) => `${d.source}/${d.id}`)).toEqual([`rot-a/${oldA}`, `rot-b/${oldB}`]);
    expect(r.shortfall).toMatch(/below minFreeBytes .* only the newest snapshot of each source is left$/);
    const deleted = log.filter((e) => e.message.startsWith('deleted snapshot'));
    expect(deleted.map((e) => e.reason)).toEqual([
      expect.stringMatching(/^free space .* is below minFreeBytes .*; deleting the oldest snapshot$/),
      expect.stringMatching(/^free space .* is below minFreeBytes/),
    ]);
    expect([...entries(dir, 'rot-a'), ...entries(dir, 'rot-b')]).toEqual([newA, newB]);
  });

  it('on a small tmpfs a snapshot rotates the oldest first to make room, and one that cannot fit is refused', async () => {
    const small = await tmpfs('small');
    const r15 = await bigReplica('rot-15', 15);
    const clock = { now: Date.now() };
    const opts = {
      dir: small,
      stateDir: path.join(root, 'state-small'),
      snapshots: { compressionLevel: 0, minFreeBytes: '24MiB' },
    };
    const { logger, entries: log } = capturingLogger();
    const service = serviceAt(clock, opts, logger);
    const first = await service.createSnapshot('rot-15');
    await applyChange(r15.url, 1, ['big']);
    clock.now += 1000;
    const second = await service.createSnapshot('rot-15');
    expect([first.record.status, second.record.status, second.record.deleted]).toEqual(['ok', 'ok', []]);
    const free = (await statfsProbe.measure(small)).freeBytes;
    expect(free - first.record.totalBytes).toBeLessThan(24 * MiB);
    await applyChange(r15.url, 2, ['big']);
    clock.now += 1000;
    const third = await service.createSnapshot('rot-15');
    expect(third.record.status).toBe('ok');
    expect(third.record.deleted).toEqual([
      {
        source: 'rot-15',
        id: first.record.id,
        reason: expect.stringMatching(
          /^free space .* below minFreeBytes 24\.0 MiB after reserving 1\d\.\d MiB/,
        ),
      },
    ]);
    expect(
      log.some(
        (e) => e.message === `deleted snapshot rot-15/${first.record.id}: ${third.record.deleted[0].reason}`,
      ),
    ).toBe(true);
    expect(entries(small, 'rot-15')).toEqual([second.record.id, third.record.id]);

    const tight = await tmpfs('tight');
    const r40 = await bigReplica('rot-40', 40);
    const service40 = serviceAt(clock, { ...opts, dir: tight, snapshots: { compressionLevel: 0 } });
    const only = await service40.createSnapshot('rot-40');
    expect(only.record.status).toBe('ok');
    await applyChange(r40.url, 1, ['big']);
    const freeBefore = (await statfsProbe.measure(tight)).freeBytes;
    clock.now += 1000;
    const refused = await service40.createSnapshot('rot-40');
    expect(refused.record).toMatchObject({ status: 'failed', errorCode: 'DISK_FULL', id: null, deleted: [] });
    expect(refused.record.error).toMatch(
      /^DISK_FULL: no room for a snapshot of rot-40: it needs about (39|40)\.\d MiB \(1 of 1 tables changed since .*\); .* Nothing was written or deleted\.$/,
    );
    expect(entries(tight, 'rot-40')).toEqual([only.record.id]);
    expect((await statfsProbe.measure(tight)).freeBytes).toBe(freeBefore);
  });
});
