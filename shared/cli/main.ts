#!/usr/bin/env node
/**
 * The `pgferry` program. Each subcommand lives in its own file under agent/cli or backup-server/cli and
 * registers itself through the role's command list; this file only assembles them and maps errors to exit codes.
 * (The dispatcher is the one place in shared/ that names the role folders: it is the program's entry point.)
 */
import { Command, CommanderError } from 'commander';
import { agentCommands } from '../../agent/cli/commands';
import { serverCommands } from '../../backup-server/cli/commands';
import { describeError, exitCodeOf, isPgferryError } from '../errors';
import { PGFERRY_VERSION } from '../version';
import { registerStatus } from './status';

export function buildProgram(): Command {
  const program = new Command('pgferry')
    .description(
      'Live off-host copy of a PostgreSQL database, turned into verified, rotated, restorable snapshots',
    )
    .version(PGFERRY_VERSION)
    .showHelpAfterError()
    .exitOverride();
  for (const register of [...serverCommands, ...agentCommands, registerStatus]) register(program);
  return program;
}

export async function main(argv: string[]): Promise<number> {
  try {
    await buildProgram().parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode;
    process.stderr.write(`pgferry: ${describeError(e)}\n`);
    if (isPgferryError(e)) process.stderr.write(`  what to do: ${e.hint}\n`);
    return exitCodeOf(e);
  }
}

if (require.main === module) {
  // exit explicitly: a library timer (ftp-srv's passive-port wait, a pg idle socket) must not keep a
  // stopped daemon alive; on Linux stdout/stderr to pipes and files are written synchronously
  main(process.argv).then((code) => process.exit(code));
}
