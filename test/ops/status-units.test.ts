/** The pure parts of status: schedule times, what needs attention, the human screen, the 24 h log window. */
import cron from 'node-cron';
import { nextRun, previousRun, startOfLocalDay, zonedTime } from '../../backup-server/status/schedule-times';
import { RecentLog } from '../../shared/recent-log';
import { agentAttention, serverAttention } from '../../shared/status/attention';
import { renderAgentStatus, renderServerStatus } from '../../shared/status/render';
import type { AgentStatusReport, ServerStatusReport } from '../../shared/status/report';

const at = (iso: string) => Date.parse(iso);

describe('schedule times', () => {
  it.each([
    ['0 */6 * * *', 'UTC', '2025-03-14T09:26:53Z', '2025-03-14T06:00:00.000Z', '2025-03-14T12:00:00.000Z'],
    ['0 3 * * *', 'UTC', '2025-03-14T02:59:59Z', '2025-03-13T03:00:00.000Z', '2025-03-14T03:00:00.000Z'],
    ['0 3 * * *', 'UTC', '2025-03-14T03:00:00Z', '2025-03-14T03:00:00.000Z', '2025-03-15T03:00:00.000Z'],
    ['30 1 * * 1-5', 'UTC', '2025-03-16T12:00:00Z', '2025-03-14T01:30:00.000Z', '2025-03-17T01:30:00.000Z'],
    [
      '0 3 * * *',
      'Europe/Berlin',
      '2025-03-14T12:00:00Z',
      '2025-03-14T02:00:00.000Z',
      '2025-03-15T02:00:00.000Z',
    ],
    ['0 0 1 1 *', 'UTC', '2025-03-14T12:00:00Z', '2025-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z'],
    ['15 10 8 * * *', 'UTC', '2025-03-14T12:00:00Z', '2025-03-14T08:10:15.000Z', '2025-03-15T08:10:15.000Z'],
    ['0 0 L * *', 'UTC', '2025-03-14T12:00:00Z', '2025-02-28T00:00:00.000Z', '2025-03-31T00:00:00.000Z'],
  ])('"%s" in %s at %s: last %s, next %s', (expr, tz, now, prev, next) => {
    const tasks = cron.getTasks().size;
    expect(previousRun(expr, tz, at(now))?.toISOString()).toBe(prev);
    expect(nextRun(expr, tz, at(now))?.toISOString()).toBe(next);
    expect(cron.getTasks().size).toBe(tasks);
  });

  it('skips a wall-clock time that daylight saving leaves out and finds the run before it', () => {
    // 2025-03-30 02:30 does not exist in Berlin; 01:30 does
    expect(previousRun('30 1,2 * * *', 'Europe/Berlin', at('2025-03-30T05:00:00Z'))?.toISOString()).toBe(
      '2025-03-30T00:30:00.000Z',
    );
  });

  it('finds local midnight in a zone', () => {
    expect(new Date(startOfLocalDay(at('2025-07-01T23:30:00Z'), 'Europe/Berlin')).toISOString()).toBe(
      '2025-07-01T22:00:00.000Z',
    );
    expect(zonedTime({ year: 2025, month: 1, day: 2, hour: 3, minute: 4, second: 5 }, 'UTC')).toBe(
      at('2025-01-02T03:04:05Z'),
    );
  });
});

function serverReport(): ServerStatusReport {
  return {
    role: 'server',
    version: '0.1.0',
    host: 'backup1',
    generatedAt: '2025-03-14T09:30:00.000Z',
    startedAt: '2025-03-14T08:00:00.000Z',
    heartbeat: { deadAfterSeconds: 30 },
    sources: [
      {
        source: 'monitoring',
        connected: true,
        state: 'LIVE',
        stateSince: '2025-03-14T08:00:01.000Z',
        lastHeartbeatAt: '2025-03-14T09:29:58.000Z',
        closedByAgent: false,
        phase: 'streaming',
        remoteAddress: '10.0.0.5',
        agentVersion: '0.1.0',
        appliedLsn: '0/1A2B3C4D',
        primaryWalLsn: '0/1A2B3C4D',
        lagBytes: 0,
        lagSeconds: 0,
        lastAppliedAt: '2025-03-14T09:29:59.000Z',
        lastCommitTime: '2025-03-14T09:29:59.000Z',
        retainedWalBytes: 1024,
        transactionsApplied: 10,
        rowsApplied: 100,
        spool: { transactions: 0, bytes: 0 },
        lastError: null,
        transitions: [
          { from: 'UNKNOWN', to: 'LIVE', at: '2025-03-14T08:00:01.000Z', reason: 'heartbeat received' },
        ],
      },
    ],
    snapshots: {
      enabled: true,
      dir: '/var/lib/pgferry/snapshots',
      timezone: 'UTC',
      completedToday: 2,
      lastFinishedAt: '2025-03-14T06:01:00.000Z',
      count: 5,
      totalBytes: 5 * 1024 ** 3,
      lastRun: null,
      nextRunAt: '2025-03-14T12:00:00.000Z',
      error: null,
      sources: [
        {
          source: 'monitoring',
          enabled: true,
          schedule: '0 */6 * * *',
          nextRunAt: '2025-03-14T12:00:00.000Z',
          dueSince: '2025-03-14T00:00:00.000Z',
          late: false,
          count: 5,
          totalBytes: 5 * 1024 ** 3,
          newestId: '20250314T060000000Z',
          newestFinishedAt: '2025-03-14T06:01:00.000Z',
          newestAgeSeconds: 12_000,
          lastRun: null,
          recentRuns: { ok: 5, failed: 0, skipped: 0 },
        },
      ],
    },
    disk: {
      path: '/var/lib/pgferry/snapshots',
      totalBytes: 100 * 1024 ** 3,
      usedBytes: 40 * 1024 ** 3,
      freeBytes: 60 * 1024 ** 3,
      usedPercent: 40,
      freePercent: 60,
      minFreeBytes: 10 * 1024 ** 3,
      minFreePercent: 10,
      bytesAboveMinFree: 50 * 1024 ** 3,
      percentAboveMinFree: 50,
      belowThreshold: false,
      error: null,
    },
    hooks: [],
    log: { since: '2025-03-14T08:00:00.000Z', errors: 0, warnings: 0, recent: [] },
    ftp: { enabled: true, port: 2121, defaultPassword: false },
    ftpDefaultPassword: false,
  };
}

describe('what needs attention', () => {
  const run = {
    source: 'monitoring',
    id: null,
    trigger: 'schedule',
    status: 'failed',
    startedAt: '2025-03-14T06:00:00.000Z',
    finishedAt: '2025-03-14T06:00:01.000Z',
    durationMs: 1000,
    error: 'DISK_FULL: no room',
    errorCode: 'DISK_FULL',
  };
  it.each<[string, (r: ServerStatusReport) => void, RegExp]>([
    ['a DEAD source', (r) => Object.assign(r.sources[0], { state: 'DEAD' }), /^source monitoring is DEAD/],
    [
      'an agent that is not connected',
      (r) => Object.assign(r.sources[0], { connected: false }),
      /agent not connected/,
    ],
    [
      'a late snapshot',
      (r) => Object.assign(r.snapshots.sources[0], { late: true }),
      /older than the schedule/,
    ],
    ['a failed run', (r) => Object.assign(r.snapshots.sources[0], { lastRun: run }), /failed: DISK_FULL/],
    ['low free space', (r) => Object.assign(r.disk, { belowThreshold: true }), /^free space on/],
    ['an unreadable volume', (r) => Object.assign(r.disk, { error: 'not mounted' }), /not mounted/],
    [
      'errors in the log',
      (r) =>
        Object.assign(r.log, {
          errors: 2,
          recent: [{ at: r.generatedAt, level: 'error', message: 'apply failed', error: 'boom' }],
        }),
      /^2 errors logged since .*latest: apply failed \(boom\)/,
    ],
    ['the default FTP password', (r) => Object.assign(r.ftp, { defaultPassword: true }), /default password/],
  ])('names %s, and only it', (_what, change, expected) => {
    expect(serverAttention(serverReport())).toEqual([]);
    const r = serverReport();
    change(r);
    expect(serverAttention(r)).toEqual([expect.stringMatching(expected)]);
  });

  it('lets a CLOSE source be disconnected and ignores warnings', () => {
    const r = serverReport();
    Object.assign(r.sources[0], { connected: false, state: 'CLOSE', closedByAgent: true });
    r.log.warnings = 3;
    expect(serverAttention(r)).toEqual([]);
  });

  it('names the agent problems', () => {
    const a: AgentStatusReport = {
      role: 'agent',
      version: '0.1.0',
      host: 'mon1',
      generatedAt: '2025-03-14T09:30:00.000Z',
      startedAt: '2025-03-14T08:00:00.000Z',
      source: 'monitoring',
      connected: true,
      phase: 'streaming',
      slot: 'pgferry',
      slotExists: true,
      retainedWalBytes: 1024,
      maxRetainedWalBytes: 8 * 1024 ** 3,
      confirmedLsn: '0/1A2B3C4D',
      currentWalLsn: '0/1A2B3C4D',
      slotDroppedAt: null,
      lastError: null,
      reconnects: 0,
      log: { since: '2025-03-14T08:00:00.000Z', errors: 0, warnings: 0, recent: [] },
    };
    expect(agentAttention(a)).toEqual([]);
    expect(renderAgentStatus(a, [])).toMatch(/retained WAL 1\.0 KiB of maxRetainedWalBytes 8\.0 GiB/);
    expect(
      agentAttention({ ...a, connected: false, slotExists: false, retainedWalBytes: 5 * 1024 ** 3 }),
    ).toEqual([
      'not connected to the backup server',
      expect.stringMatching(/slot is missing/),
      expect.stringMatching(/over half of maxRetainedWalBytes/),
    ]);
  });
});

describe('the human screen', () => {
  it('answers the morning questions in one screen', () => {
    const text = renderServerStatus(serverReport(), []);
    expect(text).toMatch(/^pgferry server on backup1: all well\n/);
    expect(text).toContain('Snapshots completed today: 2');
    expect(text).toContain(
      `Last snapshot finished at ${new Date('2025-03-14T06:01:00Z').toLocaleString('sv-SE')}`,
    );
    expect(text).toMatch(/monitoring: LIVE since .*connected from 10\.0\.0\.5/);
    expect(text).toMatch(/applied LSN 0\/1A2B3C4D, lag 0 B \/ 0\.0 s/);
    expect(text).toMatch(/used 40\.0 GiB, free 60\.0 GiB of 100\.0 GiB \(40\.0 % used, 60\.0 % free\)/);
    expect(text).toMatch(/minFreeBytes 10\.0 GiB \(50\.0 GiB to spare\)/);
    expect(text).toMatch(/Log since .*: 0 errors, 0 warnings/);
    expect(renderServerStatus(serverReport(), ['x is wrong'])).toMatch(/NEEDS ATTENTION\n {2}! x is wrong\n/);
    expect(text).not.toMatch(/large transaction/);
  });

  it('shows large transactions spooled while they run on the primary', () => {
    const r = serverReport();
    r.sources[0].spool = { transactions: 1, bytes: 88 * 1024 * 1024 };
    expect(renderServerStatus(r, [])).toMatch(
      /1 large transaction\(s\) still running on the primary: 88\.0 MiB received and spooled/,
    );
  });
});

describe('the 24 h log window', () => {
  it('counts warnings and errors of the last 24 hours, newest first, and says since when', () => {
    let now = at('2025-03-14T00:00:00Z');
    const log = new RecentLog(86_400_000, () => now);
    const entry = (level: string, message: string, extra: Record<string, unknown> = {}) =>
      log.add({ level, message, timestamp: new Date(now).toISOString(), ...extra });
    entry('info', 'ignored');
    entry('warn', 'old warning');
    now += 3_600_000;
    entry('error', 'apply failed', { code: 'APPLY_FAILED', source: 'monitoring' });
    expect(log.summary()).toMatchObject({ since: '2025-03-14T00:00:00.000Z', errors: 1, warnings: 1 });
    now += 86_400_000 - 1000;
    entry('warn', 'new warning');
    const s = log.summary();
    expect(s).toMatchObject({ errors: 1, warnings: 1, since: '2025-03-14T00:59:59.000Z' });
    expect(s.recent.map((e) => e.message)).toEqual(['new warning', 'apply failed']);
    expect(s.recent[1]).toMatchObject({ code: 'APPLY_FAILED', source: 'monitoring' });
  });
});
