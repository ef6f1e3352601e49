/**
 * The server's answer on GET /status (see shared/status/report.ts): sources with their states, the
 * snapshots against their schedules, the snapshot volume against the free-space thresholds, the hooks,
 * and the warnings and errors of the last 24 hours.
 */
import * as os from 'node:os';
import type { ServerConfig } from '../../shared/config/server-config';
import { describeError } from '../../shared/errors';
import type { RecentLog } from '../../shared/recent-log';
import type {
  DiskReport,
  RunReport,
  ServerStatusReport,
  SnapshotsReport,
  SourceReport,
  SourceSnapshotsReport,
} from '../../shared/status/report';
import { PGFERRY_VERSION } from '../../shared/version';
import type { BackupServer } from '../server';
import type { SnapshotInfo } from '../snapshot/catalog';
import { type DiskProbe, statfsProbe } from '../snapshot/disk-probe';
import { freeSpaceShortfall } from '../snapshot/retention-planner';
import type { RunRecord } from '../snapshot/run-history';
import type { SnapshotService } from '../snapshot/snapshot-service';
import { nextRun, previousRun, startOfLocalDay } from './schedule-times';

export interface ServerStatusDeps {
  config: ServerConfig;
  server: BackupServer;
  snapshots: SnapshotService;
  recentLog: RecentLog;
  startedAt: number;
  ftpPort?: () => number;
  probe?: DiskProbe;
  now?: () => number;
}

function sourceReports(deps: ServerStatusDeps, now: number): SourceReport[] {
  return deps.server.sourceStatus().map((s) => {
    const v = deps.server.states.view(s.source);
    const commit = s.lastCommitTime ? Date.parse(s.lastCommitTime) : null;
    const lagSeconds =
      s.lagBytes === null
        ? null
        : s.lagBytes === 0 || commit === null
          ? 0
          : Math.max(0, (now - commit) / 1000);
    return {
      source: s.source,
      connected: s.connected,
      state: v?.state ?? 'UNKNOWN',
      stateSince: v?.since ?? null,
      lastHeartbeatAt: s.lastHeartbeatAt,
      closedByAgent: s.closedByAgent,
      phase: s.phase,
      remoteAddress: s.remoteAddress,
      agentVersion: s.agentVersion,
      appliedLsn: s.appliedLsn,
      primaryWalLsn: s.primaryWalLsn,
      lagBytes: s.lagBytes,
      lagSeconds: lagSeconds === null ? null : Math.round(lagSeconds * 10) / 10,
      lastAppliedAt: s.lastAppliedAt,
      lastCommitTime: s.lastCommitTime,
      retainedWalBytes: s.retainedWalBytes,
      transactionsApplied: s.transactionsApplied,
      rowsApplied: s.rowsApplied,
      spool: s.spool,
      lastError: s.lastError,
      transitions: (v?.transitions ?? []).map(({ from, to, at, reason }) => ({ from, to, at, reason })),
    };
  });
}

function runReport(r: RunRecord | undefined): RunReport | null {
  if (!r) return null;
  const { source, id, trigger, status, startedAt, finishedAt, durationMs, error, errorCode } = r;
  return { source, id, trigger, status, startedAt, finishedAt, durationMs, error, errorCode };
}

/** How long after a scheduled time its snapshot may still be missing: the grace plus the longest recent run. */
function graceMs(config: ServerConfig, runs: RunRecord[]): number {
  const longest = Math.max(0, ...runs.filter((r) => r.status === 'ok').map((r) => r.durationMs));
  return config.status.snapshotGraceSeconds * 1000 + longest;
}

async function snapshotsReport(deps: ServerStatusDeps, now: number): Promise<SnapshotsReport> {
  const { config } = deps;
  const tz = config.snapshots.timezone;
  let all: SnapshotInfo[] = [];
  let history: RunRecord[] = [];
  let error: string | null = null;
  try {
    [all, history] = await Promise.all([deps.snapshots.list(), deps.snapshots.history()]);
  } catch (e) {
    error = describeError(e);
  }
  const sources: SourceSnapshotsReport[] = config.sourceSettings.map((src) => {
    const mine = all.filter((s) => s.source === src.name);
    const runs = history.filter((r) => r.source === src.name);
    const newest = mine[0];
    const enabled = config.snapshots.enabled && src.snapshotsEnabled;
    const due = enabled ? previousRun(src.schedule, tz, now - graceMs(config, runs)) : null;
    const newestStart = newest ? Date.parse(newest.manifest.startedAt) : null;
    const late =
      due !== null && (newestStart !== null ? newestStart < due.getTime() : deps.startedAt < due.getTime());
    return {
      source: src.name,
      enabled,
      schedule: src.schedule,
      nextRunAt: enabled ? (nextRun(src.schedule, tz, now)?.toISOString() ?? null) : null,
      dueSince: due?.toISOString() ?? null,
      late: error === null && late,
      count: mine.length,
      totalBytes: mine.reduce((n, s) => n + s.manifest.totalBytes, 0),
      newestId: newest?.id ?? null,
      newestFinishedAt: newest?.manifest.finishedAt ?? null,
      newestAgeSeconds: newest ? Math.round((now - Date.parse(newest.manifest.finishedAt)) / 1000) : null,
      lastRun: runReport(runs[0]),
      recentRuns: {
        ok: runs.filter((r) => r.status === 'ok').length,
        failed: runs.filter((r) => r.status === 'failed').length,
        skipped: runs.filter((r) => r.status === 'skipped').length,
      },
    };
  });
  const today = startOfLocalDay(now, tz);
  const finished = all.map((s) => s.manifest.finishedAt).sort();
  const next = sources
    .map((s) => s.nextRunAt)
    .filter((x): x is string => x !== null)
    .sort();
  return {
    enabled: config.snapshots.enabled,
    dir: config.snapshots.dir,
    timezone: tz ?? Intl.DateTimeFormat().resolvedOptions().timeZone,
    completedToday: finished.filter((f) => Date.parse(f) >= today).length,
    lastFinishedAt: finished.at(-1) ?? null,
    count: all.length,
    totalBytes: all.reduce((n, s) => n + s.manifest.totalBytes, 0),
    lastRun: runReport(history[0]),
    nextRunAt: next[0] ?? null,
    sources,
    error,
  };
}

export async function diskReport(
  config: Pick<ServerConfig, 'snapshots'>,
  probe: DiskProbe = statfsProbe,
): Promise<DiskReport> {
  const { dir, minFreeBytes, minFreePercent } = config.snapshots;
  const base = { path: dir, minFreeBytes, minFreePercent };
  try {
    const { freeBytes, totalBytes } = await probe.measure(dir);
    const freePercent = totalBytes > 0 ? (freeBytes / totalBytes) * 100 : 100;
    const round = (x: number) => Math.round(x * 100) / 100;
    return {
      ...base,
      totalBytes,
      usedBytes: totalBytes - freeBytes,
      freeBytes,
      usedPercent: round(100 - freePercent),
      freePercent: round(freePercent),
      bytesAboveMinFree: freeBytes - minFreeBytes,
      percentAboveMinFree: round(freePercent - minFreePercent),
      belowThreshold:
        freeSpaceShortfall(freeBytes, totalBytes, { retentionDays: 0, minFreeBytes, minFreePercent }) !==
        null,
      error: null,
    };
  } catch (e) {
    return {
      ...base,
      totalBytes: null,
      usedBytes: null,
      freeBytes: null,
      usedPercent: null,
      freePercent: null,
      bytesAboveMinFree: null,
      percentAboveMinFree: null,
      belowThreshold: false,
      error: describeError(e),
    };
  }
}

export async function serverStatus(deps: ServerStatusDeps): Promise<ServerStatusReport> {
  const now = deps.now?.() ?? Date.now();
  const { config } = deps;
  const [snapshots, disk] = await Promise.all([snapshotsReport(deps, now), diskReport(config, deps.probe)]);
  const ftpDefault = config.ftp.enabled && config.ftpDefaultPassword;
  return {
    role: 'server',
    version: PGFERRY_VERSION,
    host: os.hostname(),
    generatedAt: new Date(now).toISOString(),
    startedAt: new Date(deps.startedAt).toISOString(),
    heartbeat: { deadAfterSeconds: config.heartbeat.deadAfterSeconds },
    sources: sourceReports(deps, now),
    snapshots,
    disk,
    hooks: deps.server.hooks.stats(),
    log: deps.recentLog.summary(),
    ftp: {
      enabled: config.ftp.enabled,
      port: deps.ftpPort?.() ?? config.ftp.port,
      defaultPassword: ftpDefault,
    },
    ftpDefaultPassword: ftpDefault,
  };
}
