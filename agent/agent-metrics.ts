/**
 * The agent's Prometheus metrics (its own prom-client Registry), refreshed from its status report on
 * every scrape of GET /metrics. LSNs are exported as byte positions.
 */
import { Counter, collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import { parseLsn } from '../shared/lsn';
import type { AgentStatusReport } from '../shared/status/report';
import type { MetricsText } from '../shared/status-http';

const PHASES = ['starting', 'connecting', 'initial-copy', 'streaming', 'waiting'];

export class AgentMetrics {
  readonly registry = new Registry();
  private readonly g: Record<string, Gauge<string>> = {};
  private readonly reconnects: Counter<string>;

  constructor() {
    collectDefaultMetrics({ register: this.registry });
    const gauge = (name: string, help: string, labelNames: string[] = []) => {
      this.g[name] = new Gauge({ name, help, labelNames, registers: [this.registry] });
    };
    gauge('pgferry_info', 'pgferry version of this process', ['version', 'role']);
    gauge('pgferry_agent_connected', '1 when connected to the backup server', ['source']);
    gauge('pgferry_agent_phase', '1 for the current phase', ['source', 'phase']);
    gauge('pgferry_agent_slot_exists', '1 when the replication slot exists on the primary', ['source']);
    gauge('pgferry_agent_retained_wal_bytes', 'WAL the slot retains on the primary', ['source']);
    gauge('pgferry_agent_max_retained_wal_bytes', 'the maxRetainedWalBytes bound', ['source']);
    gauge('pgferry_agent_confirmed_lsn', 'the last LSN the backup server confirmed, as a byte position', [
      'source',
    ]);
    gauge('pgferry_agent_primary_wal_lsn', "the primary's current WAL position", ['source']);
    gauge('pgferry_log_entries', 'warnings and errors logged in the last 24 h', ['level']);
    this.reconnects = new Counter({
      name: 'pgferry_agent_reconnects_total',
      help: 'sessions with the backup server that ended and were started again',
      labelNames: ['source'],
      registers: [this.registry],
    });
  }

  update(r: AgentStatusReport): void {
    const set = (name: string, labels: Record<string, string>, v: number | null) => {
      if (v === null || !Number.isFinite(v)) this.g[name].remove(labels);
      else this.g[name].set(labels, v);
    };
    const lsn = (x: string | null) => (x === null ? null : Number(parseLsn(x)));
    const l = { source: r.source };
    set('pgferry_info', { version: r.version, role: 'agent' }, 1);
    set('pgferry_agent_connected', l, r.connected ? 1 : 0);
    for (const phase of PHASES) set('pgferry_agent_phase', { ...l, phase }, r.phase === phase ? 1 : 0);
    set('pgferry_agent_slot_exists', l, r.slotExists === null ? null : r.slotExists ? 1 : 0);
    set('pgferry_agent_retained_wal_bytes', l, r.retainedWalBytes);
    set('pgferry_agent_max_retained_wal_bytes', l, r.maxRetainedWalBytes);
    set('pgferry_agent_confirmed_lsn', l, lsn(r.confirmedLsn));
    set('pgferry_agent_primary_wal_lsn', l, lsn(r.currentWalLsn));
    set('pgferry_log_entries', { level: 'error' }, r.log.errors);
    set('pgferry_log_entries', { level: 'warn' }, r.log.warnings);
    this.reconnects.remove(l);
    this.reconnects.inc(l, r.reconnects);
  }

  async text(): Promise<MetricsText> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
