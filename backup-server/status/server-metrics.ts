/**
 * The server's Prometheus metrics (its own prom-client Registry), refreshed from the status report on
 * every scrape of GET /metrics. Cumulative figures (rows, transactions, hook runs) are counters; the
 * apply rate is `rate(pgferry_source_rows_applied_total[5m])`. LSNs are exported as byte positions.
 */
import { Counter, collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import { parseLsn } from '../../shared/lsn';
import type { ServerStatusReport } from '../../shared/status/report';
import type { MetricsText } from '../../shared/status-http';
import { SOURCE_STATES } from '../source-state';

function lsnNumber(lsn: string | null): number | null {
  return lsn === null ? null : Number(parseLsn(lsn));
}

function setCounter(c: Counter<string>, labels: Record<string, string>, value: number): void {
  c.remove(labels);
  c.inc(labels, value);
}

export class ServerMetrics {
  readonly registry = new Registry();
  private readonly g: Record<string, Gauge<string>> = {};
  private readonly c: Record<string, Counter<string>> = {};

  constructor() {
    collectDefaultMetrics({ register: this.registry });
    const gauge = (name: string, help: string, labelNames: string[] = []) => {
      this.g[name] = new Gauge({ name, help, labelNames, registers: [this.registry] });
    };
    const counter = (name: string, help: string, labelNames: string[]) => {
      this.c[name] = new Counter({ name, help, labelNames, registers: [this.registry] });
    };
    gauge('pgferry_info', 'pgferry version of this process', ['version', 'role']);
    gauge('pgferry_source_connected', '1 when the source agent is connected', ['source']);
    gauge('pgferry_source_state', '1 for the current state of the source (UNKNOWN, LIVE, DEAD, CLOSE)', [
      'source',
      'state',
    ]);
    gauge('pgferry_source_applied_lsn', 'last applied LSN of the source, as a byte position', ['source']);
    gauge('pgferry_source_primary_wal_lsn', "the primary's WAL position at the last heartbeat", ['source']);
    gauge('pgferry_source_lag_bytes', 'WAL bytes between the primary and what is applied', ['source']);
    gauge('pgferry_source_lag_seconds', 'how far behind in time the replica is (0 when caught up)', [
      'source',
    ]);
    gauge('pgferry_source_retained_wal_bytes', 'WAL the source slot retains on the primary', ['source']);
    gauge(
      'pgferry_source_spooled_bytes',
      'bytes of transactions still running on the primary, streamed and spooled until they commit',
      ['source'],
    );
    gauge('pgferry_source_last_applied_timestamp_seconds', 'when a change was last applied', ['source']);
    counter(
      'pgferry_source_transactions_applied_total',
      'source transactions applied since the server started',
      ['source'],
    );
    counter('pgferry_source_rows_applied_total', 'row changes applied since the server started', ['source']);
    gauge('pgferry_snapshots', 'complete snapshots kept', ['source']);
    gauge('pgferry_snapshot_bytes', 'total size of the kept snapshots (hard-linked files counted in each)', [
      'source',
    ]);
    gauge('pgferry_snapshot_newest_age_seconds', 'age of the newest complete snapshot', ['source']);
    gauge('pgferry_snapshot_late', '1 when the newest snapshot is older than the schedule implies', [
      'source',
    ]);
    gauge('pgferry_snapshot_next_run_timestamp_seconds', 'next scheduled snapshot run', ['source']);
    gauge(
      'pgferry_snapshot_runs',
      'snapshot runs in the kept history (the last snapshots.historySize) by outcome',
      ['source', 'status'],
    );
    gauge(
      'pgferry_snapshot_last_run_success',
      '1 when the last snapshot run succeeded, 0 when it failed or was skipped',
      ['source'],
    );
    gauge('pgferry_disk_free_bytes', 'free bytes on the snapshot volume');
    gauge('pgferry_disk_total_bytes', 'size of the snapshot volume');
    gauge('pgferry_disk_min_free_bytes', 'the minFreeBytes threshold');
    gauge('pgferry_disk_below_threshold', '1 when free space is under minFreeBytes or minFreePercent');
    counter('pgferry_hook_runs_total', 'hook deliveries by outcome (after retries)', ['kind', 'outcome']);
    gauge('pgferry_log_entries', 'warnings and errors logged in the last 24 h', ['level']);
  }

  update(r: ServerStatusReport): void {
    const { g, c } = this;
    const set = (name: string, labels: Record<string, string>, v: number | null | undefined) => {
      if (v === null || v === undefined || !Number.isFinite(v)) g[name].remove(labels);
      else g[name].set(labels, v);
    };
    const ts = (iso: string | null) => (iso ? Date.parse(iso) / 1000 : null);
    set('pgferry_info', { version: r.version, role: 'server' }, 1);
    for (const s of r.sources) {
      const l = { source: s.source };
      set('pgferry_source_connected', l, s.connected ? 1 : 0);
      for (const state of SOURCE_STATES)
        set('pgferry_source_state', { ...l, state }, s.state === state ? 1 : 0);
      set('pgferry_source_applied_lsn', l, lsnNumber(s.appliedLsn));
      set('pgferry_source_primary_wal_lsn', l, lsnNumber(s.primaryWalLsn));
      set('pgferry_source_lag_bytes', l, s.lagBytes);
      set('pgferry_source_lag_seconds', l, s.lagSeconds);
      set('pgferry_source_retained_wal_bytes', l, s.retainedWalBytes);
      set('pgferry_source_spooled_bytes', l, s.spool.bytes);
      set('pgferry_source_last_applied_timestamp_seconds', l, ts(s.lastAppliedAt));
      setCounter(c.pgferry_source_transactions_applied_total, l, s.transactionsApplied);
      setCounter(c.pgferry_source_rows_applied_total, l, s.rowsApplied);
    }
    for (const s of r.snapshots.sources) {
      const l = { source: s.source };
      set('pgferry_snapshots', l, s.count);
      set('pgferry_snapshot_bytes', l, s.totalBytes);
      set('pgferry_snapshot_newest_age_seconds', l, s.newestAgeSeconds);
      set('pgferry_snapshot_late', l, s.late ? 1 : 0);
      set('pgferry_snapshot_next_run_timestamp_seconds', l, ts(s.nextRunAt));
      set('pgferry_snapshot_last_run_success', l, s.lastRun ? (s.lastRun.status === 'ok' ? 1 : 0) : null);
      for (const status of ['ok', 'failed', 'skipped'] as const)
        set('pgferry_snapshot_runs', { ...l, status }, s.recentRuns[status]);
    }
    set('pgferry_disk_free_bytes', {}, r.disk.freeBytes);
    set('pgferry_disk_total_bytes', {}, r.disk.totalBytes);
    set('pgferry_disk_min_free_bytes', {}, r.disk.minFreeBytes);
    set('pgferry_disk_below_threshold', {}, r.disk.error ? null : r.disk.belowThreshold ? 1 : 0);
    for (const h of r.hooks) {
      setCounter(c.pgferry_hook_runs_total, { kind: h.kind, outcome: 'ok' }, h.succeeded);
      setCounter(c.pgferry_hook_runs_total, { kind: h.kind, outcome: 'failed' }, h.failed);
    }
    set('pgferry_log_entries', { level: 'error' }, r.log.errors);
    set('pgferry_log_entries', { level: 'warn' }, r.log.warnings);
  }

  async text(): Promise<MetricsText> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
