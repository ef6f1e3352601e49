/** `pgferry agent`: runs the agent in the foreground; on SIGTERM/SIGINT it tells the server CLOSE and stops. */
import type { Command } from 'commander';
import { loadAgentConfig } from '../../shared/config/agent-config';
import { createLogger } from '../../shared/log';
import { RecentLog } from '../../shared/recent-log';
import { runUntilSignal } from '../../shared/cli/signals';
import { Agent } from '../agent';
import type { StatusEndpoint } from '../../shared/status-http';
import { serveAgentEndpoint } from '../agent-endpoint';

export function registerAgent(program: Command): void {
  program
    .command('agent')
    .description(
      'run the agent beside the primary in the foreground (SIGTERM/SIGINT: clean stop, CLOSE sent)',
    )
    .requiredOption('-c, --config <file>', 'agent config (YAML)')
    .addHelpText('after', '\nExamples:\n  pgferry agent --config /etc/pgferry/agent.yaml\n')
    .action(async (opts: { config: string }) => {
      const config = loadAgentConfig(opts.config);
      const recentLog = new RecentLog();
      const log = createLogger({
        ...config.log,
        defaultMeta: { role: 'agent', source: config.source.name },
        sink: recentLog.add,
      });
      const agent = new Agent(config, log);
      let endpoint: StatusEndpoint | null = null;
      await runUntilSignal(
        log,
        async () => {
          if (config.http.enabled) endpoint = await serveAgentEndpoint(agent, config.http, recentLog);
          agent.start();
        },
        async () => {
          await agent.stop();
          await endpoint?.close();
        },
      );
    });
}
