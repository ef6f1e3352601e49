/** `pgferry server`: runs the backup server in the foreground until SIGTERM/SIGINT. */
import type { Command } from 'commander';
import { loadServerConfig } from '../../shared/config/server-config';
import { createLogger } from '../../shared/log';
import { RecentLog } from '../../shared/recent-log';
import { runUntilSignal } from '../../shared/cli/signals';

export function registerServer(program: Command): void {
  program
    .command('server')
    .description('run the backup server in the foreground (SIGTERM/SIGINT stop it cleanly)')
    .requiredOption('-c, --config <file>', 'server config (YAML)')
    .addHelpText('after', '\nExamples:\n  pgferry server --config /etc/pgferry/server.yaml\n')
    .action(async (opts: { config: string }) => {
      const config = loadServerConfig(opts.config);
      const recentLog = new RecentLog();
      const log = createLogger({ ...config.log, defaultMeta: { role: 'server' }, sink: recentLog.add });
      // loaded here: the server's parts (FTP, snapshots, link) are for this command only, not every start
      const { assembleServer } = await import('../assemble');
      const { server } = assembleServer(config, log, { recentLog });
      await runUntilSignal(
        log,
        () => server.start(),
        () => server.stop(),
      );
    });
}
