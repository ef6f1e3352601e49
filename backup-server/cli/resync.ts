/**
 * `pgferry resync SOURCE`: a deliberate full resync (never automatic during load). Marks the source's
 * replica; at the agent's next connection (at once if it is connected) a fresh copy is made into a new
 * database, and the old replica stays until the copy completes. This is also the way out of a pause.
 */
import type { Command } from 'commander';
import { loadServerConfig } from '../../shared/config/server-config';
import { PgferryError } from '../../shared/errors';
import { connectReplica } from '../replica/database';
import { requestResync } from '../replica/metadata';

export function registerResync(program: Command): void {
  program
    .command('resync')
    .description('make a fresh full copy of a source at its agent’s next connection (also lifts a pause)')
    .argument('<source>', 'source name from server.yaml')
    .requiredOption('-c, --config <file>', 'server config (YAML)')
    .option('--json', 'print JSON')
    .addHelpText('after', '\nExamples:\n  pgferry resync monitoring --config /etc/pgferry/server.yaml\n')
    .action(async (name: string, opts: { config: string; json?: boolean }) => {
      const config = loadServerConfig(opts.config);
      const source = config.sourceSettings.find((s) => s.name === name);
      if (!source) {
        throw new PgferryError('CONFIG_INVALID', `unknown source "${name}"`, {
          hint: `use one of: ${config.sourceSettings.map((s) => s.name).join(', ')}`,
        });
      }
      let marked = false;
      try {
        const c = await connectReplica(source.replicaUrl, 'pgferry-resync');
        try {
          marked = await requestResync(c);
        } finally {
          await c.end().catch(() => undefined);
        }
      } catch (e) {
        if (!/does not exist/.test((e as Error).message)) throw e;
      }
      const message = marked
        ? `resync of ${name} requested: the agent makes a fresh full copy at its next connection (within a heartbeat if connected); the current replica stays until the copy completes`
        : `${name} has no complete replica yet: its first full copy happens when its agent connects`;
      process.stdout.write(
        opts.json ? `${JSON.stringify({ source: name, requested: marked, message })}\n` : `${message}\n`,
      );
    });
}
