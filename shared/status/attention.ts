/**
 * What needs the operator's attention in a status report, one sentence each saying what is wrong and
 * what to do. Pure: `pgferry status` exits 1 when the list is not empty.
 */
import type { LogSummary } from '../recent-log';
import { formatBytes } from '../units';
import type { AgentStatusReport, ServerStatusReport } from './report';

function logItems(log: LogSummary | undefined): string[] {
  if (!log || log.errors === 0) return [];
  const latest = log.recent.find((e) => e.level === 'error');
  return [
    `${log.errors} error${log.errors === 1 ? '' : 's'} logged since ${log.since}${latest ? `; latest: ${latest.message}${latest.error ? ` (${latest.error})` : ''}` : ''}: read the log`,
  ];
}

export function serverAttention(st: ServerStatusReport): string[] {
  const items: string[] = [];
  for (const s of st.sources ?? []) {
    if (s.state === 'DEAD')
      items.push(
        `source ${s.source} is DEAD: no heartbeat since ${s.lastHeartbeatAt ?? s.stateSince ?? '?'}; check the agent on the monitored host`,
      );
    else if (!s.connected && !s.closedByAgent && s.state !== 'CLOSE')
      items.push(`source ${s.source}: agent not connected; start it or check its log`);
    if (s.lastError) items.push(`source ${s.source}: last error: ${s.lastError}`);
  }
  const snaps = st.snapshots;
  if (snaps) {
    if (snaps.error) items.push(`snapshots cannot be checked: ${snaps.error}`);
    for (const s of snaps.sources ?? []) {
      if (s.late)
        items.push(
          `source ${s.source}: the newest snapshot (${s.newestFinishedAt ?? 'none'}) is older than the schedule "${s.schedule}" implies: one was due since ${s.dueSince}; see the last run`,
        );
      if (s.lastRun?.status === 'failed')
        items.push(
          `source ${s.source}: the last snapshot run (${s.lastRun.startedAt}) failed: ${s.lastRun.error ?? 'unknown error'}`,
        );
    }
  }
  const d = st.disk;
  if (d?.error) items.push(`snapshot volume: ${d.error}`);
  else if (d?.belowThreshold)
    items.push(
      `free space on ${d.path} is ${formatBytes(d.freeBytes ?? 0)} (${(d.freePercent ?? 0).toFixed(1)} %), under minFreeBytes ${formatBytes(d.minFreeBytes)} or minFreePercent ${d.minFreePercent} %: rotation deletes the oldest snapshots; free space or grow the volume`,
    );
  items.push(...logItems(st.log));
  if (st.ftpDefaultPassword || (st.ftp?.enabled && st.ftp.defaultPassword))
    items.push('FTP accepts the default password "backup": set ftp.passwordHash (pgferry hash-password)');
  return items;
}

export function agentAttention(st: AgentStatusReport): string[] {
  const items: string[] = [];
  if (!st.connected) items.push('not connected to the backup server');
  if (st.slotExists === false)
    items.push('the replication slot is missing (a full resync follows when connected)');
  const retained = Number(st.retainedWalBytes ?? 0);
  const max = Number(st.maxRetainedWalBytes ?? Number.POSITIVE_INFINITY);
  if (retained > max * 0.5)
    items.push(
      `retained WAL ${formatBytes(retained)} is over half of maxRetainedWalBytes (${formatBytes(max)}); is the backup server reachable?`,
    );
  items.push(...logItems(st.log));
  return items;
}
