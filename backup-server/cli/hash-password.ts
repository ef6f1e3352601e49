/** `pgferry hash-password`: reads a password (stdin or a hidden prompt) and prints the hash for the config. */
import type { Command } from 'commander';
import { hashPassword } from '../../shared/auth/password';
import { readSecretInput } from '../../shared/cli/prompt';

export function registerHashPassword(program: Command): void {
  program
    .command('hash-password')
    .description('print the hash of a password, for passwordHash in server.yaml (sources and ftp)')
    .addHelpText(
      'after',
      '\nThe password is read from standard input, or asked for (hidden) on a terminal.\n\nExamples:\n  pgferry hash-password\n  printf %s "$SECRET" | pgferry hash-password\n',
    )
    .action(async () => {
      const password = await readSecretInput('Password: ');
      process.stdout.write(`${hashPassword(password)}\n`);
    });
}
