/** The agent's loopback HTTP endpoint: GET /status (its status report) and GET /metrics. */
import * as os from 'node:os';
import type { AgentConfig } from '../shared/config/agent-config';
import { RecentLog } from '../shared/recent-log';
import type { AgentStatusReport } from '../shared/status/report';
import { type StatusEndpoint, serveStatus } from '../shared/status-http';
import { PGFERRY_VERSION } from '../shared/version';
import type { Agent } from './agent';
import { AgentMetrics } from './agent-metrics';

export function agentStatus(agent: Agent, recentLog: RecentLog, startedAt: number): AgentStatusReport {
  return {
    ...agent.st,
    role: 'agent',
    version: PGFERRY_VERSION,
    host: os.hostname(),
    generatedAt: new Date().toISOString(),
    startedAt: new Date(startedAt).toISOString(),
    log: recentLog.summary(),
  };
}

export async function serveAgentEndpoint(
  agent: Agent,
  http: AgentConfig['http'],
  recentLog: RecentLog = new RecentLog(),
): Promise<StatusEndpoint> {
  const startedAt = Date.now();
  const metrics = new AgentMetrics();
  return serveStatus(
    http.host,
    http.port,
    () => agentStatus(agent, recentLog, startedAt),
    async () => {
      metrics.update(agentStatus(agent, recentLog, startedAt));
      return metrics.text();
    },
  );
}
