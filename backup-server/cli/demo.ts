/**
 * `pgferry demo`: the whole system on this one machine from nothing but the checkout, with a running
 * commentary; exit 0 when the restored database equals the primary. Ctrl-C stops and cleans up.
 */
import { type Command, InvalidArgumentError } from 'commander';
import { describeError } from '../../shared/errors';

function seconds(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 600)
    throw new InvalidArgumentError('expected whole seconds from 1 to 600');
  return n;
}

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description(
      'the whole system on this machine: throwaway clusters, server, agent, writes, snapshot, FTP, recovery, comparison',
    )
    .option('--seconds <n>', 'how long the write load runs', seconds, 5)
    .option('--keep', 'keep the demo folder (configs, logs, snapshots) after the end')
    .addHelpText(
      'after',
      `
Needs PostgreSQL's server programs (initdb, pg_ctl, pg_dump; PGFERRY_PG_BIN names their folder, default
/usr/lib/postgresql/15/bin) and, when run as root, the postgres OS user. Takes well under two minutes.

Examples:
  npm run demo
  npx pgferry demo --seconds 10 --keep
`,
    )
    .action(async (opts: { seconds: number; keep?: boolean }) => {
      // loaded here: the demo pulls in every part of pgferry, which no other command needs to start
      const { Demo } = await import('../demo/demo-run');
      const demo = new Demo({ loadSeconds: opts.seconds, keep: opts.keep === true });
      let cleaning: Promise<void> | null = null;
      const cleanup = () => {
        cleaning ??= demo.cleanup();
        return cleaning;
      };
      const onSignal = (sig: NodeJS.Signals) => {
        if (cleaning) {
          process.stdout.write('\nstill cleaning up, one moment\n');
          return;
        }
        process.stdout.write(`\n${sig}: stopping the demo and cleaning up\n`);
        demo.interrupted = true;
        void cleanup().finally(() => process.exit(130));
      };
      const onExit = () => demo.killChildrenNow();
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
      process.on('exit', onExit);
      let identical = false;
      try {
        identical = await demo.run();
      } catch (e) {
        if (cleaning) {
          await cleaning;
          return;
        }
        process.stdout.write(`\nthe demo failed: ${describeError(e)}\n${demo.logTails()}\n`);
        throw e;
      } finally {
        await cleanup();
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
        process.off('exit', onExit);
      }
      process.stdout.write(`\nDone in ${demo.elapsedSeconds.toFixed(1)} s.\n`);
      process.exitCode = identical ? 0 : 1;
    });
}
