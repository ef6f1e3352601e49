/**
 * Typed errors with stable codes. Every code has a fixed exit code and a default hint telling the operator
 * what to do next; messages carry the specifics (the bad value, the expected form).
 */
export const ERROR_CODES = {
  CONFIG_INVALID: { exit: 78, hint: 'fix the named field in the config file and start again' },
  CONFIG_NOT_FOUND: { exit: 78, hint: 'pass --config with the path of an existing YAML file' },
  SECRET_MISSING: {
    exit: 78,
    hint: 'set the password in the config, in the named file, or in the named environment variable',
  },
  PROTOCOL_VERSION: { exit: 76, hint: 'run the same pgferry version on the agent and the backup server' },
  PROTOCOL_ERROR: { exit: 76, hint: 'the peer is not a pgferry agent/server of a compatible version' },
  FRAME_TOO_LARGE: {
    exit: 76,
    hint: 'the peer sent a frame above the size limit; check that it is a pgferry peer',
  },
  AUTH_FAILED: {
    exit: 77,
    hint: 'check the source name and password (pgferry hash-password makes the hash)',
  },
  AUTH_THROTTLED: { exit: 75, hint: 'too many failed logins from this address; wait and check the password' },
  TLS_FINGERPRINT: {
    exit: 77,
    hint: 'the server certificate does not match the pinned fingerprint; compare with the one the server logs at start',
  },
  CONNECTION_LOST: { exit: 75, hint: 'the peer went away; pgferry reconnects by itself' },
  SLOT_LOST: { exit: 70, hint: 'the replication slot was dropped; a full resync follows automatically' },
  SLOT_IN_USE: { exit: 75, hint: 'another process consumes the slot; stop the other agent' },
  PRIMARY_UNAVAILABLE: { exit: 75, hint: 'check that the primary PostgreSQL is running and reachable' },
  REPLICA_UNAVAILABLE: { exit: 75, hint: 'check that the backup-side PostgreSQL is running and reachable' },
  APPLY_FAILED: {
    exit: 70,
    hint: 'the change could not be applied on the replica; see the error and run pgferry resync SOURCE if it persists',
  },
  SNAPSHOT_FAILED: { exit: 70, hint: 'see the error; the partial snapshot was removed' },
  SNAPSHOT_NOT_FOUND: { exit: 66, hint: 'list snapshots with pgferry snapshot list' },
  SNAPSHOT_CORRUPT: { exit: 65, hint: 'the snapshot does not match its manifest; use another snapshot' },
  SNAPSHOT_BUSY: {
    exit: 75,
    hint: 'another snapshot or rotation is running (its process id is in the message); try again when it ends',
  },
  DISK_FULL: { exit: 73, hint: 'free space on the snapshot volume or lower the retention' },
  SPOOL_UNAVAILABLE: {
    exit: 73,
    hint: "free space (or fix permissions) in the backup server's stateDir, under spool/; the agent reconnects and the primary streams the transaction again",
  },
  DESTINATION_UNAVAILABLE: { exit: 73, hint: 'mount or create the snapshot folder and make it writable' },
  FTP_AUTH_FAILED: { exit: 77, hint: 'check the FTP user and password' },
  RECOVERY_REFUSED: {
    exit: 65,
    hint: 'read the reason; use --force only if replacing the target is intended',
  },
  FTP_UNAVAILABLE: {
    exit: 75,
    hint: 'check the backup server address and FTP port (default 2121) and that its FTP service runs; run the command again, downloads resume',
  },
  FTP_TLS_FAILED: {
    exit: 77,
    hint: 'the FTP server offered no TLS, or its certificate was not trusted: pass --tls-ca-file or --tls-fingerprint, or leave out --require-tls',
  },
  DOWNLOAD_FAILED: {
    exit: 75,
    hint: 'run the same command again: the download resumes where it stopped',
  },
  TARGET_UNAVAILABLE: {
    exit: 75,
    hint: 'check the --target URL (postgres://user@host:port/dbname) and that PostgreSQL runs there and lets this user create databases',
  },
  RESTORE_FAILED: {
    exit: 70,
    hint: 'the target is only partly restored: fix the cause named above and run again with --force to replace it',
  },
  HOOK_FAILED: {
    exit: 70,
    hint: 'check the hook named in the message (command, webhook URL or SMTP server); replication goes on meanwhile',
  },
  SOURCE_PAUSED: {
    exit: 70,
    hint: 'replication of this source is paused after a change the replica could not apply; fix the cause, then run: pgferry resync SOURCE --config server.yaml',
  },
  SCHEMA_MISMATCH: {
    exit: 70,
    hint: "the replica's schema differs from the primary's; see the log for the change that did not replicate, then run pgferry resync SOURCE",
  },
  USAGE: { exit: 64, hint: 'see pgferry <command> --help for the options and examples' },
  INTERNAL: { exit: 70, hint: 'this is a bug in pgferry; please report it with the log' },
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export class PgferryError extends Error {
  readonly code: ErrorCode;
  readonly hint: string;
  readonly details?: Record<string, unknown>;

  constructor(
    code: ErrorCode,
    message: string,
    opts: { hint?: string; cause?: unknown; details?: Record<string, unknown> } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'PgferryError';
    this.code = code;
    this.hint = opts.hint ?? ERROR_CODES[code].hint;
    this.details = opts.details;
  }

  get exitCode(): number {
    return ERROR_CODES[this.code].exit;
  }
}

export function isPgferryError(e: unknown, code?: ErrorCode): e is PgferryError {
  return e instanceof PgferryError && (code === undefined || e.code === code);
}

/** A one-line description of any thrown value, for logs and replies. */
export function describeError(e: unknown): string {
  if (e instanceof PgferryError) return `${e.code}: ${e.message}`;
  if (e instanceof Error) return e.message;
  return String(e);
}

export function exitCodeOf(e: unknown): number {
  return e instanceof PgferryError ? e.exitCode : 1;
}
