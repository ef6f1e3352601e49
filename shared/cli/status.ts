/**
 * `pgferry status`: the daily check. The role comes from the config (server.yaml has `sources`, agent.yaml
 * has `source`); the figures come from the running process's local endpoint. Exit 0 all well, 1 something
 * needs attention (listed), 2 cannot tell (process not running or not answering).
 */
import type { Command } from 'commander';
import { readYamlFile } from '../config/load';
import { loadAgentConfig } from '../config/agent-config';
import { loadServerConfig } from '../config/server-config';
import { formatBytes } from '../units';
import { fetchStatus } from '../status-http';

interface SourceLike {
  source: string;
  connected: boolean;
  closedByAgent: boolean;
  phase: string;
  appliedLsn: string | null;
  lagBytes: number | null;
  lastCommitTime: string | null;
  lastError: string | null;
}

export function attentionItems(role: 'server' | 'agent', st: Record<string, unknown>): string[] {
  const items: string[] = [];
  if (role === 'server') {
    for (const s of (st.sources as SourceLike[]) ?? []) {
      if (!s.connected && !s.closedByAgent) items.push(`source ${s.source}: agent not connected`);
      if (s.lastError) items.push(`source ${s.source}: last error: ${s.lastError}`);
    }
    if (st.ftpDefaultPassword) items.push('FTP accepts the default password "backup": set ftp.passwordHash');
  } else {
    if (!st.connected) items.push('not connected to the backup server');
    if (st.slotExists === false)
      items.push('the replication slot is missing (a full resync follows when connected)');
    const retained = Number(st.retainedWalBytes ?? 0);
    const max = Number(st.maxRetainedWalBytes ?? Number.POSITIVE_INFINITY);
    if (retained > max * 0.5)
      items.push(
        `retained WAL ${formatBytes(retained)} is over half of maxRetainedWalBytes (${formatBytes(max)})`,
      );
  }
  return items;
}

export function registerStatus(program: Command): void {
  program
    .command('status')
    .description('the daily check of a running server or agent (exit 0 ok, 1 needs attention, 2 cannot tell)')
    .requiredOption('-c, --config <file>', 'server.yaml or agent.yaml')
    .option('--json', 'print JSON')
    .addHelpText(
      'after',
      '\nExamples:\n  pgferry status --config /etc/pgferry/server.yaml\n  pgferry status --config /etc/pgferry/agent.yaml --json\n',
    )
    .action(async (opts: { config: string; json?: boolean }) => {
      const raw = readYamlFile(opts.config) as Record<string, unknown> | null;
      const role: 'server' | 'agent' = raw && 'sources' in raw ? 'server' : 'agent';
      const http = role === 'server' ? loadServerConfig(opts.config).http : loadAgentConfig(opts.config).http;
      let st: Record<string, unknown>;
      try {
        st = (await fetchStatus(http.host, http.port)) as Record<string, unknown>;
      } catch (e) {
        const msg = `cannot tell: the ${role} is not answering on ${http.host}:${http.port} (${(e as Error).message}); is it running?`;
        if (opts.json) process.stdout.write(`${JSON.stringify({ role, ok: null, error: msg }, null, 2)}\n`);
        else process.stdout.write(`${msg}\n`);
        process.exitCode = 2;
        return;
      }
      const attention = attentionItems(role, st);
      if (opts.json) {
        process.stdout.write(
          `${JSON.stringify({ role, ok: attention.length === 0, attention, ...st }, null, 2)}\n`,
        );
      } else {
        process.stdout.write(`pgferry ${role}: ${attention.length ? 'NEEDS ATTENTION' : 'all well'}\n`);
        for (const a of attention) process.stdout.write(`  ! ${a}\n`);
        if (role === 'server') {
          for (const s of (st.sources as SourceLike[]) ?? []) {
            process.stdout.write(
              `  source ${s.source}: ${s.connected ? 'connected' : s.closedByAgent ? 'closed by agent' : 'NOT connected'}, ${s.phase}, applied ${s.appliedLsn ?? '-'}, lag ${s.lagBytes === null ? '-' : formatBytes(s.lagBytes)}, last commit ${s.lastCommitTime ?? '-'}\n`,
            );
          }
        } else {
          process.stdout.write(
            `  connected: ${st.connected}, phase ${st.phase}, slot ${st.slot} ${st.slotExists ? 'present' : 'MISSING'}, retained WAL ${formatBytes(Number(st.retainedWalBytes ?? 0))} of ${formatBytes(Number(st.maxRetainedWalBytes))}, confirmed ${st.confirmedLsn ?? '-'}\n`,
          );
        }
      }
      process.exitCode = attention.length ? 1 : 0;
    });
}
