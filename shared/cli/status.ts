/**
 * `pgferry status`: the daily check. The role comes from the config (server.yaml has `sources`, agent.yaml
 * has `source`); the figures come from the running process's local endpoint. Exit 0 all well, 1 something
 * needs attention (listed), 2 cannot tell (process not running or not answering).
 */
import type { Command } from 'commander';
import { loadAgentConfig } from '../config/agent-config';
import { readYamlFile } from '../config/load';
import { loadServerConfig } from '../config/server-config';
import { agentAttention, serverAttention } from '../status/attention';
import { renderAgentStatus, renderServerStatus } from '../status/render';
import type { AgentStatusReport, ServerStatusReport } from '../status/report';
import { fetchStatus } from '../status-http';

export const STATUS_EXIT = { ok: 0, attention: 1, cannotTell: 2 } as const;

export function attentionItems(role: 'server' | 'agent', st: Record<string, unknown>): string[] {
  return role === 'server'
    ? serverAttention(st as unknown as ServerStatusReport)
    : agentAttention(st as unknown as AgentStatusReport);
}

function looksLike(role: 'server' | 'agent', st: unknown): st is Record<string, unknown> {
  if (typeof st !== 'object' || st === null) return false;
  const r = st as Record<string, unknown>;
  return role === 'server' ? Array.isArray(r.sources) && typeof r.snapshots === 'object' : 'slot' in r;
}

export function registerStatus(program: Command): void {
  program
    .command('status')
    .description('the daily check of a running server or agent (exit 0 ok, 1 needs attention, 2 cannot tell)')
    .requiredOption('-c, --config <file>', 'server.yaml or agent.yaml')
    .option('--json', 'print JSON')
    .addHelpText(
      'after',
      `
The server answers: per source connected?, state (LIVE/DEAD/CLOSE), applied LSN, lag, last change
applied; snapshots completed today, the last one, the last run, the next run; the snapshot volume's
space against minFreeBytes/minFreePercent; errors and warnings logged in the last 24 h.
The agent answers: connected?, slot, retained WAL against maxRetainedWalBytes, last confirmed LSN.

Examples:
  pgferry status --config /etc/pgferry/server.yaml
  pgferry status --config /etc/pgferry/agent.yaml --json
`,
    )
    .action(async (opts: { config: string; json?: boolean }) => {
      const raw = readYamlFile(opts.config) as Record<string, unknown> | null;
      const role: 'server' | 'agent' = raw && 'sources' in raw ? 'server' : 'agent';
      const http = role === 'server' ? loadServerConfig(opts.config).http : loadAgentConfig(opts.config).http;
      let st: unknown;
      let problem: string | null = null;
      if (!http.enabled)
        problem = `cannot tell: http.enabled is false in ${opts.config}; enable it to let status ask the running ${role}`;
      else {
        try {
          st = await fetchStatus(http.host, http.port);
          if (!looksLike(role, st))
            problem = `cannot tell: what answers on ${http.host}:${http.port} is not a pgferry ${role}; check http.port`;
        } catch (e) {
          problem = `cannot tell: the ${role} is not answering on ${http.host}:${http.port} (${(e as Error).message}); is it running?`;
        }
      }
      if (problem !== null || !looksLike(role, st)) {
        const msg = problem ?? 'cannot tell';
        if (opts.json) process.stdout.write(`${JSON.stringify({ role, ok: null, error: msg }, null, 2)}\n`);
        else process.stdout.write(`${msg}\n`);
        process.exitCode = STATUS_EXIT.cannotTell;
        return;
      }
      const attention = attentionItems(role, st);
      if (opts.json)
        process.stdout.write(
          `${JSON.stringify({ ...st, role, ok: attention.length === 0, attention }, null, 2)}\n`,
        );
      else
        process.stdout.write(
          role === 'server'
            ? renderServerStatus(st as unknown as ServerStatusReport, attention)
            : renderAgentStatus(st as unknown as AgentStatusReport, attention),
        );
      process.exitCode = attention.length ? STATUS_EXIT.attention : STATUS_EXIT.ok;
    });
}
