/** The human screen of `pgferry status`: the morning questions in the order an operator asks them. */
import { formatBytes } from '../units';
import type { AgentStatusReport, RunReport, ServerStatusReport, SourceReport } from './report';

/** "2025-03-14 09:26:53" in this machine's time zone; "-" for null. */
export function localTime(iso: string | null | undefined): string {
  return iso ? new Date(iso).toLocaleString('sv-SE') : '-';
}

function seconds(s: number | null): string {
  if (s === null) return '-';
  if (s < 120) return `${s.toFixed(1)} s`;
  if (s < 7200) return `${(s / 60).toFixed(1)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

function head(role: string, host: string, attention: string[]): string[] {
  const lines = [`pgferry ${role} on ${host}: ${attention.length ? 'NEEDS ATTENTION' : 'all well'}`];
  for (const a of attention) lines.push(`  ! ${a}`);
  return lines;
}

function sourceLines(s: SourceReport): string[] {
  const link = s.connected
    ? `connected from ${s.remoteAddress ?? '?'} (agent ${s.agentVersion ?? '?'})`
    : s.closedByAgent || s.state === 'CLOSE'
      ? 'not connected (closed by the agent)'
      : 'NOT connected';
  const lines = [
    `  ${s.source}: ${s.state} since ${localTime(s.stateSince)}, ${link}, ${s.phase}`,
    `    applied LSN ${s.appliedLsn ?? '-'}, lag ${s.lagBytes === null ? '-' : formatBytes(s.lagBytes)} / ${seconds(s.lagSeconds)}, last change applied at ${localTime(s.lastAppliedAt)}`,
    `    ${s.transactionsApplied} transactions, ${s.rowsApplied} rows applied since the server started; retained WAL on the primary ${s.retainedWalBytes === null ? '-' : formatBytes(s.retainedWalBytes)}`,
  ];
  if (s.spool.transactions > 0)
    lines.push(
      `    ${s.spool.transactions} large transaction(s) still running on the primary: ${formatBytes(s.spool.bytes)} received and spooled, applied at their commit`,
    );
  const t = s.transitions.slice(-3);
  if (t.length)
    lines.push(`    transitions: ${t.map((x) => `${localTime(x.at)} ${x.from}→${x.to}`).join(', ')}`);
  return lines;
}

function runLine(r: RunReport | null): string {
  if (!r) return 'Last run: none recorded';
  const what = `${r.source}${r.id ? `/${r.id}` : ''}, ${r.trigger}, started ${localTime(r.startedAt)}, ${(r.durationMs / 1000).toFixed(1)} s`;
  return `Last run: ${r.status} (${what})${r.error ? `: ${r.error}` : ''}`;
}

export function renderServerStatus(st: ServerStatusReport, attention: string[]): string {
  const lines = head('server', st.host, attention);
  lines.push('', 'Sources');
  for (const s of st.sources) lines.push(...sourceLines(s));
  const sn = st.snapshots;
  lines.push('', `Snapshots (${sn.dir}, ${sn.enabled ? `times in ${sn.timezone}` : 'schedule disabled'})`);
  lines.push(`  Snapshots completed today: ${sn.completedToday}`);
  lines.push(`  Last snapshot finished at ${localTime(sn.lastFinishedAt)}`);
  lines.push(`  ${runLine(sn.lastRun)}`);
  lines.push(`  Next scheduled run: ${localTime(sn.nextRunAt)}`);
  lines.push(`  Kept: ${sn.count} snapshots, ${formatBytes(sn.totalBytes)}`);
  for (const s of sn.sources)
    lines.push(
      `  ${s.source}: ${s.count} snapshots, newest ${s.newestId ?? '-'}${s.newestAgeSeconds === null ? '' : ` (${seconds(s.newestAgeSeconds)} old)`}, schedule "${s.schedule}"${s.enabled ? '' : ' (disabled)'}${s.late ? ', LATE' : ''}`,
    );
  const d = st.disk;
  lines.push('', `Disk (${d.path})`);
  if (d.error) lines.push(`  cannot tell: ${d.error}`);
  else {
    lines.push(
      `  used ${formatBytes(d.usedBytes ?? 0)}, free ${formatBytes(d.freeBytes ?? 0)} of ${formatBytes(d.totalBytes ?? 0)} (${(d.usedPercent ?? 0).toFixed(1)} % used, ${(d.freePercent ?? 0).toFixed(1)} % free)`,
      `  thresholds: minFreeBytes ${formatBytes(d.minFreeBytes)} (${formatBytes(Math.abs(d.bytesAboveMinFree ?? 0))} ${(d.bytesAboveMinFree ?? 0) >= 0 ? 'to spare' : 'SHORT'}), minFreePercent ${d.minFreePercent} % (${Math.abs(d.percentAboveMinFree ?? 0).toFixed(1)} points ${(d.percentAboveMinFree ?? 0) >= 0 ? 'to spare' : 'SHORT'})`,
    );
  }
  if (st.hooks.length) {
    lines.push('', 'Hooks');
    for (const h of st.hooks)
      lines.push(
        `  ${h.kind} ${h.target}: ${h.succeeded} ok, ${h.failed} failed${h.lastError ? `; last error ${localTime(h.lastErrorAt)}: ${h.lastError}` : ''}`,
      );
  }
  lines.push(...logLines(st.log));
  return `${lines.join('\n')}\n`;
}

function logLines(log: ServerStatusReport['log']): string[] {
  const lines = ['', `Log since ${localTime(log.since)}: ${log.errors} errors, ${log.warnings} warnings`];
  for (const e of log.recent)
    lines.push(`  ${localTime(e.at)} ${e.level.padEnd(5)} ${e.message}${e.error ? ` (${e.error})` : ''}`);
  return lines;
}

export function renderAgentStatus(st: AgentStatusReport, attention: string[]): string {
  const lines = head('agent', st.host, attention);
  lines.push(
    '',
    `  source ${st.source}: ${st.connected ? 'connected to the backup server' : 'NOT connected'}, ${st.phase}, ${st.reconnects} reconnects`,
    `  slot ${st.slot}: ${st.slotExists === null ? 'not checked yet' : st.slotExists ? 'present' : 'MISSING'}${st.slotDroppedAt ? `, dropped at ${localTime(st.slotDroppedAt)}` : ''}`,
    `  retained WAL ${st.retainedWalBytes === null ? '-' : formatBytes(st.retainedWalBytes)} of maxRetainedWalBytes ${formatBytes(st.maxRetainedWalBytes)}`,
    `  last confirmed LSN ${st.confirmedLsn ?? '-'} (primary at ${st.currentWalLsn ?? '-'})`,
  );
  if (st.lastError) lines.push(`  last error: ${st.lastError}`);
  lines.push(...logLines(st.log));
  return `${lines.join('\n')}\n`;
}
