/**
 * The JSON a running server or agent answers on GET /status, which `pgferry status` prints (with `ok`
 * and `attention` added). Times are ISO strings, sizes bytes, LSNs "X/Y".
 */
import type { LogSummary } from '../recent-log';

export interface TransitionReport {
  from: string;
  to: string;
  at: string;
  reason: string;
}

export interface SourceReport {
  source: string;
  connected: boolean;
  /** UNKNOWN (nothing heard since the server started), LIVE, DEAD or CLOSE */
  state: string;
  stateSince: string | null;
  lastHeartbeatAt: string | null;
  closedByAgent: boolean;
  phase: string;
  remoteAddress: string | null;
  agentVersion: string | null;
  appliedLsn: string | null;
  primaryWalLsn: string | null;
  lagBytes: number | null;
  /** now minus the commit time of the last applied transaction while behind; 0 when caught up */
  lagSeconds: number | null;
  lastAppliedAt: string | null;
  lastCommitTime: string | null;
  retainedWalBytes: number | null;
  transactionsApplied: number;
  rowsApplied: number;
  /** large transactions still running on the primary, streamed so far and spooled until they commit */
  spool: { transactions: number; bytes: number };
  lastError: string | null;
  /** newest last */
  transitions: TransitionReport[];
}

export interface RunReport {
  source: string;
  id: string | null;
  trigger: string;
  status: string;
  startedAt: string;
  finishedAt: string;
  durationMs: number;
  error: string | null;
  errorCode: string | null;
}

export interface SourceSnapshotsReport {
  source: string;
  enabled: boolean;
  schedule: string;
  nextRunAt: string | null;
  /** the latest scheduled time a snapshot should exist since (schedule and grace applied) */
  dueSince: string | null;
  /** true when no snapshot was taken since `dueSince` */
  late: boolean;
  count: number;
  totalBytes: number;
  newestId: string | null;
  newestFinishedAt: string | null;
  newestAgeSeconds: number | null;
  lastRun: RunReport | null;
  /** outcomes of this source's runs in the kept history (the last snapshots.historySize runs) */
  recentRuns: { ok: number; failed: number; skipped: number };
}

export interface SnapshotsReport {
  enabled: boolean;
  dir: string;
  /** the zone "today" and the schedules are in */
  timezone: string;
  completedToday: number;
  lastFinishedAt: string | null;
  count: number;
  totalBytes: number;
  lastRun: RunReport | null;
  nextRunAt: string | null;
  sources: SourceSnapshotsReport[];
  /** set when the snapshot folder or history could not be read */
  error: string | null;
}

export interface DiskReport {
  path: string;
  totalBytes: number | null;
  usedBytes: number | null;
  freeBytes: number | null;
  usedPercent: number | null;
  freePercent: number | null;
  minFreeBytes: number;
  minFreePercent: number;
  /** free bytes above minFreeBytes (negative: below) */
  bytesAboveMinFree: number | null;
  /** free percent above minFreePercent, in percentage points (negative: below) */
  percentAboveMinFree: number | null;
  belowThreshold: boolean;
  error: string | null;
}

export interface HookReport {
  kind: string;
  target: string;
  succeeded: number;
  failed: number;
  failedAttempts: number;
  lastError: string | null;
  lastErrorAt: string | null;
}

export interface ServerStatusReport {
  role: 'server';
  version: string;
  host: string;
  generatedAt: string;
  startedAt: string;
  heartbeat: { deadAfterSeconds: number };
  sources: SourceReport[];
  snapshots: SnapshotsReport;
  disk: DiskReport;
  hooks: HookReport[];
  log: LogSummary;
  ftp: { enabled: boolean; port: number; defaultPassword: boolean };
  /** kept for older readers: ftp.enabled && ftp.defaultPassword */
  ftpDefaultPassword: boolean;
}

/** What the running agent knows of its link and slot (agent/agent.ts keeps it up to date). */
export interface AgentLinkStatus {
  source: string;
  connected: boolean;
  phase: string;
  slot: string;
  slotExists: boolean | null;
  retainedWalBytes: number | null;
  maxRetainedWalBytes: number;
  confirmedLsn: string | null;
  currentWalLsn: string | null;
  slotDroppedAt: string | null;
  lastError: string | null;
  reconnects: number;
}

export interface AgentStatusReport extends AgentLinkStatus {
  role: 'agent';
  version: string;
  host: string;
  generatedAt: string;
  startedAt: string;
  log: LogSummary;
}

export type StatusReport = ServerStatusReport | AgentStatusReport;
