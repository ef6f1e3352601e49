/**
 * `pgferry recover`: list the snapshots on a backup server, pick one, download it with progress and resume,
 * verify it, and restore it into a clean database. The password never goes on the command line.
 */
import * as fs from 'node:fs';
import { type Command, InvalidArgumentError, Option } from 'commander';
import type { RegisterCommand } from '../../shared/cli/command';
import { PgferryError } from '../../shared/errors';
import { createLogger, type Logger } from '../../shared/log';
import { formatCatalogTable, listSnapshots } from '../recovery/catalog';
import { defaultWorkDir } from '../recovery/download';
import { FtpSource } from '../recovery/ftp-source';
import { LocalSource } from '../recovery/local-source';
import { ask, pickSnapshot } from '../recovery/prompt';
import { formatRecoverySummary, recover } from '../recovery/recovery';
import type { SnapshotSource } from '../recovery/source';

export interface RecoverIo {
  stdin: NodeJS.ReadableStream & { isTTY?: boolean };
  stdout: NodeJS.WritableStream & { isTTY?: boolean };
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
  env: NodeJS.ProcessEnv;
  logger?: Logger;
}

export interface RecoverFlags {
  host?: string;
  port: number;
  user: string;
  passwordFile?: string;
  source?: string;
  list?: boolean;
  latest?: boolean;
  snapshot?: string;
  target?: string;
  force?: boolean;
  json?: boolean;
  appVersion?: string;
  requireTls?: boolean;
  tlsCaFile?: string;
  tlsFingerprint?: string;
  tlsInsecure?: boolean;
  workDir?: string;
  jobs: number;
  keepFiles?: boolean;
  fromDir?: string;
}

function intOption(name: string, min: number, max: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max)
      throw new InvalidArgumentError(`${name} must be a whole number from ${min} to ${max}`);
    return n;
  };
}

const EXAMPLES = `
The FTP password comes from PGFERRY_FTP_PASSWORD, from --password-file, or is asked for on a terminal.
Without --latest, --snapshot or --list, a terminal shows the snapshots and asks which one to restore.
Downloads go to --work-dir (default ${defaultWorkDir()}) and resume where they stopped when run again.

Examples:
  # what is there
  PGFERRY_FTP_PASSWORD=secret pgferry recover --host backup.example --list
  # the newest snapshot into a new database (created)
  pgferry recover --host backup.example --latest --target postgres://postgres@localhost/monitoring
  # one snapshot, only if made for this application version, replacing what is in the database
  pgferry recover --host backup.example --source monitoring --snapshot 20261122T031500123Z \\
      --app-version 5.2.1 --target postgres://postgres@localhost/monitoring --force
  # from a mounted backup disk instead of FTP
  pgferry recover --from-dir /mnt/backup/snapshots --latest --target postgres:///monitoring?host=/run/postgresql
`;

async function password(flags: RecoverFlags, io: RecoverIo): Promise<string> {
  if (io.env.PGFERRY_FTP_PASSWORD) return io.env.PGFERRY_FTP_PASSWORD;
  if (flags.passwordFile) {
    try {
      return fs.readFileSync(flags.passwordFile, 'utf8').replace(/\r?\n$/, '');
    } catch (e) {
      throw new PgferryError(
        'SECRET_MISSING',
        `cannot read --password-file ${flags.passwordFile}: ${(e as Error).message}`,
      );
    }
  }
  if (io.stdin.isTTY)
    return ask(
      { input: io.stdin, output: io.stderr },
      `FTP password for ${flags.user}@${flags.host}: `,
      true,
    );
  throw new PgferryError('SECRET_MISSING', 'no FTP password given', {
    hint: 'set PGFERRY_FTP_PASSWORD, pass --password-file FILE, or run on a terminal to be asked',
  });
}

async function openSource(flags: RecoverFlags, io: RecoverIo, logger: Logger): Promise<SnapshotSource> {
  if (flags.fromDir) return new LocalSource(flags.fromDir);
  if (!flags.host && io.stdin.isTTY)
    flags.host = await ask({ input: io.stdin, output: io.stderr }, 'Backup server address: ');
  if (!flags.host) {
    throw new PgferryError('USAGE', 'no backup server given', {
      hint: 'pass --host with the backup server address',
    });
  }
  return new FtpSource({
    host: flags.host,
    port: flags.port,
    user: flags.user,
    password: await password(flags, io),
    tls: {
      require: flags.requireTls === true,
      caFile: flags.tlsCaFile,
      fingerprint: flags.tlsFingerprint,
      insecure: flags.tlsInsecure,
    },
    logger,
  });
}

function checkFlags(flags: RecoverFlags, io: RecoverIo): void {
  const modes = [flags.list && '--list', flags.latest && '--latest', flags.snapshot && '--snapshot'].filter(
    Boolean,
  );
  if (modes.length > 1)
    throw new PgferryError('USAGE', `${modes.join(' and ')} exclude each other: pass one of them`);
  if (!flags.list && !flags.target) {
    throw new PgferryError('USAGE', 'no --target database given', {
      hint: 'pass --target postgres://user@host:5432/dbname (the database is created when missing)',
    });
  }
  if (!flags.list && !flags.latest && !flags.snapshot && !io.stdin.isTTY) {
    throw new PgferryError('USAGE', 'no snapshot chosen and no terminal to ask on', {
      hint: 'pass --latest, --snapshot ID, or --list to see the ids',
    });
  }
}

export async function runRecover(flags: RecoverFlags, io: RecoverIo): Promise<void> {
  checkFlags(flags, io);
  const logger = io.logger ?? createLogger({ format: 'auto' });
  const src = await openSource(flags, io, logger);
  const controller = new AbortController();
  const onSignal = () => controller.abort(new Error('interrupted'));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    if (flags.list) {
      const entries = await listSnapshots(src, { source: flags.source, logger });
      io.stdout.write(
        flags.json
          ? `${JSON.stringify(entries, null, 2)}\n`
          : entries.length
            ? `${formatCatalogTable(entries)}\n`
            : `no complete snapshot on ${src.description}${flags.source ? ` for source ${flags.source}` : ''}\n`,
      );
      return;
    }
    const result = await recover({
      src,
      source: flags.source,
      snapshotId: flags.snapshot,
      latest: flags.latest,
      pick: (entries) => pickSnapshot({ input: io.stdin, output: io.stderr }, entries),
      target: flags.target ?? '',
      force: flags.force === true,
      appVersion: flags.appVersion,
      workDir: flags.workDir ?? defaultWorkDir(io.env),
      jobs: flags.jobs,
      keepFiles: flags.keepFiles,
      progressOut: flags.json ? io.stderr : io.stdout,
      logger,
      signal: controller.signal,
    });
    io.stdout.write(
      flags.json ? `${JSON.stringify(result, null, 2)}\n` : `${formatRecoverySummary(result)}\n`,
    );
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    await src.close();
  }
}

export function recoverCommandWith(io: RecoverIo): RegisterCommand {
  return (program: Command) => {
    program
      .command('recover')
      .description('list, download, verify and restore a snapshot from a backup server into a clean database')
      .option('--host <host>', 'the backup server (FTP) address')
      .option('--port <port>', 'FTP port', intOption('--port', 1, 65535), 2121)
      .option('--user <name>', 'FTP user', 'backup')
      .option(
        '--password-file <file>',
        'read the FTP password from this file (else PGFERRY_FTP_PASSWORD or a prompt)',
      )
      .option('--source <name>', 'the source whose snapshots to use (needed when the server has several)')
      .option('--list', 'list the snapshots, newest first, and stop')
      .option('--latest', 'restore the newest snapshot')
      .option('--snapshot <id>', 'restore this snapshot, e.g. 20261122T031500123Z')
      .option(
        '--target <url>',
        'the database to restore into, postgres://user@host:port/dbname (created when missing)',
      )
      .option('--force', 'drop and recreate the target database when it has tables')
      .option('--app-version <version>', 'refuse a snapshot made for another application version')
      .option('--json', 'machine-readable output on stdout (progress goes to stderr)')
      .option('--require-tls', 'refuse a server that offers no FTPS')
      .option(
        '--tls-ca-file <file>',
        'trust the server certificate signed by this CA (or this self-signed certificate)',
      )
      .option(
        '--tls-fingerprint <sha256>',
        "pin the server certificate's SHA-256 fingerprint (as the server logs it)",
      )
      .option('--tls-insecure', 'encrypt but accept any server certificate')
      .option('--work-dir <dir>', 'where downloads are kept until restored')
      .option('--jobs <n>', 'parallel COPY streams and index builds', intOption('--jobs', 1, 64), 2)
      .option('--keep-files', 'keep the downloaded snapshot after a successful restore')
      .addOption(
        new Option(
          '--from-dir <dir>',
          'read snapshots from a local snapshot folder instead of FTP',
        ).conflicts('host'),
      )
      .addHelpText('after', EXAMPLES)
      .action(async (flags: RecoverFlags) => runRecover(flags, io));
  };
}

export const registerRecover: RegisterCommand = recoverCommandWith({
  stdin: process.stdin,
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
});
