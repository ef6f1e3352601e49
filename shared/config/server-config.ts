/** The backup server's configuration (server.yaml). Every default lives here. */
import * as path from 'node:path';
import { z } from 'zod';
import { PgferryError } from '../errors';
import { isPasswordHash, parsePasswordHash, hashPassword, type PasswordHash } from '../auth/password';
import { bytes, cronExpression, hhmm, httpSchema, logSchema, port, sourceName, timeZone } from './common';
import { envName, loadConfigFile, resolveSecret } from './load';

const hookCommand = z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]);

const sourceSchema = z.object({
  name: sourceName,
  /** a hash from `pgferry hash-password` */
  passwordHash: z.string().optional(),
  /** a file holding the hash (or the password itself) */
  passwordFile: z.string().optional(),
  /** full URL of this source's replica database; default: replica.url with database pgferry_<name> */
  replicaUrl: z.string().optional(),
  snapshots: z
    .object({
      enabled: z.boolean().optional(),
      schedule: cronExpression.optional(),
    })
    .prefault({}),
});

export const serverConfigSchema = z.object({
  listen: z
    .object({
      host: z.string().default('0.0.0.0'),
      port: port.default(50000),
    })
    .prefault({}),
  tls: z
    .union([z.literal('auto'), z.literal('off'), z.object({ certFile: z.string(), keyFile: z.string() })])
    .default('auto'),
  /** where the server keeps its own files (generated TLS pair, run history) */
  stateDir: z.string().default('/var/lib/pgferry'),
  replica: z
    .object({
      /** admin connection to the backup-side PostgreSQL; replica databases are created through it */
      url: z.string().default('postgres:///postgres?host=/run/postgresql'),
      /** source transactions grouped into one replica transaction at most */
      maxGroupTransactions: z.number().int().min(1).default(1000),
      maxGroupDelayMs: z.number().int().min(0).default(5),
      /**
       * a large transaction the primary streams while it runs is applied as it arrives, in a replica
       * transaction of its own that commits at its commit (it is spooled too, and replayed from there when
       * that is not possible); false: applied from the spool at its commit only
       */
      applyWhileStreaming: z.boolean().default(true),
      /** how a source's initial copy is loaded */
      initialCopy: z
        .object({
          /** connections building the copy's indexes and keys at once, like pg_restore -j */
          indexBuildConnections: z.number().int().min(1).max(8).default(2),
          /** maintenance_work_mem of those sessions, so a big key's sort stays in memory */
          maintenanceWorkMemBytes: bytes.default(512 * 1024 ** 2),
        })
        .prefault({}),
    })
    .prefault({}),
  sources: z.array(sourceSchema).min(1, 'at least one source is needed'),
  snapshots: z
    .object({
      enabled: z.boolean().default(true),
      dir: z.string().default('/var/lib/pgferry/snapshots'),
      schedule: cronExpression.default('0 */6 * * *'),
      timezone: timeZone.optional(),
      retentionDays: z.number().min(0).default(14),
      minFreeBytes: bytes.default(10 * 1024 ** 3),
      minFreePercent: z.number().min(0).max(100).default(10),
      maintenanceWindow: z.object({ start: hhmm, end: hhmm }).optional(),
      compressionLevel: z.number().int().min(0).max(9).default(1),
      hooks: z
        .object({
          pre: hookCommand.optional(),
          post: hookCommand.optional(),
          timeoutSeconds: z.number().positive().default(300),
        })
        .prefault({}),
      historySize: z.number().int().min(1).default(40),
      /** table copies running at once, each on its own connection importing the same exported snapshot */
      parallelCopies: z.number().int().min(1).max(16).default(2),
      /**
       * a table at least this big that would outlast the others is copied in page ranges on all connections;
       * unset: 32 MiB on a machine of 4 or more cores, never on fewer (see snapshot/parallel-copy.ts)
       */
      splitTableMinBytes: bytes.optional(),
      /** how long to wait for the agent's fresh sequence values before using the latest known ones */
      sequenceRefreshTimeoutSeconds: z.number().positive().default(10),
      /** when the daily age-retention pass runs (cron, in `timezone`) */
      rotationSchedule: cronExpression.default('0 4 * * *'),
      /** folder holding pg_dump; default /usr/lib/postgresql/<replica major>/bin, then PATH */
      pgBinDir: z.string().optional(),
      /** for tests: slow each table copy down by this many milliseconds */
      faultInjection: z.object({ tableCopyDelayMs: z.number().int().min(0).default(0) }).prefault({}),
    })
    .prefault({}),
  ftp: z
    .object({
      enabled: z.boolean().default(true),
      host: z.string().default('0.0.0.0'),
      port: port.default(2121),
      passivePorts: z
        .string()
        .regex(/^\d+-\d+$/, 'expected a port range, e.g. "30000-30009"')
        .default('30000-30009'),
      /** the address announced for passive connections (behind NAT); default: the address the client connected to */
      passiveAddress: z.string().optional(),
      user: z.string().min(1).default('backup'),
      passwordHash: z.string().optional(),
      passwordFile: z.string().optional(),
      tls: z
        .object({ certFile: z.string(), keyFile: z.string(), required: z.boolean().default(false) })
        .optional(),
      maxFailures: z.number().int().min(1).default(5),
      lockSeconds: z.number().min(0).default(60),
    })
    .prefault({}),
  heartbeat: z.object({ deadAfterSeconds: z.number().positive().default(30) }).prefault({}),
  hooks: z
    .object({
      command: hookCommand.optional(),
      webhookUrl: z.string().url().optional(),
      email: z
        .object({
          smtpHost: z.string(),
          smtpPort: port.default(25),
          from: z.string(),
          to: z.array(z.string()).min(1),
        })
        .optional(),
      /** each attempt of each hook is stopped after this long */
      timeoutSeconds: z.number().positive().default(30),
      /** attempts after the first one failed */
      retries: z.number().int().min(0).default(3),
      /** wait before the first retry, doubled for each next one (at most 5 minutes) */
      retryDelaySeconds: z.number().min(0).default(5),
    })
    .prefault({}),
  status: z
    .object({
      /**
       * how long after a scheduled run its snapshot may still be missing before status says the newest
       * snapshot is older than the schedule implies (the longest recent run of the source is added)
       */
      snapshotGraceSeconds: z.number().min(0).default(3600),
    })
    .prefault({}),
  auth: z
    .object({
      maxFailures: z.number().int().min(1).default(5),
      windowSeconds: z.number().positive().default(60),
      lockSeconds: z.number().min(0).default(60),
    })
    .prefault({}),
  maxFrameBytes: bytes.default(64 * 1024 * 1024),
  http: httpSchema(50080),
  log: logSchema,
});

export type ServerConfigInput = z.input<typeof serverConfigSchema>;
export type ServerConfigRaw = z.output<typeof serverConfigSchema>;

export interface SourceSettings {
  name: string;
  passwordHash: PasswordHash;
  replicaUrl: string;
  replicaDatabase: string;
  snapshotsEnabled: boolean;
  schedule: string;
  /** where transactions streamed while in progress wait for their commit (stateDir/spool/<name>) */
  spoolDir: string;
}

export interface ServerConfig extends ServerConfigRaw {
  sourceSettings: SourceSettings[];
  ftpPasswordHash: PasswordHash;
  ftpDefaultPassword: boolean;
}

export const DEFAULT_FTP_PASSWORD = 'backup';

function toHash(secret: string, field: string): PasswordHash {
  if (isPasswordHash(secret)) return parsePasswordHash(secret);
  if (secret.startsWith('scram-'))
    throw new PgferryError(
      'CONFIG_INVALID',
      `${field}: malformed password hash; make a new one with "pgferry hash-password"`,
    );
  return parsePasswordHash(hashPassword(secret, { N: 1024 }));
}

export function replicaUrlFor(adminUrl: string, database: string): string {
  const u = new URL(adminUrl);
  u.pathname = `/${encodeURIComponent(database)}`;
  return u.toString();
}

export function databaseOfUrl(url: string): string {
  const u = new URL(url);
  return decodeURIComponent(u.pathname.replace(/^\//, '')) || 'postgres';
}

/** Validates and resolves secrets; throws PgferryError('CONFIG_INVALID' | 'SECRET_MISSING'). */
export function resolveServerConfig(raw: ServerConfigRaw): ServerConfig {
  const seen = new Set<string>();
  const sourceSettings = raw.sources.map((s, i) => {
    if (seen.has(s.name))
      throw new PgferryError(
        'CONFIG_INVALID',
        `sources.${i}.name: "${s.name}" appears twice; source names must be unique`,
      );
    seen.add(s.name);
    const env = envName('PGFERRY_SOURCE_PASSWORD_', s.name);
    const secret = resolveSecret({ value: s.passwordHash, file: s.passwordFile, env, field: `sources.${i}` });
    if (!secret) {
      throw new PgferryError(
        'SECRET_MISSING',
        `sources.${i} (${s.name}): no password: set passwordHash (from "pgferry hash-password"), passwordFile, or the environment variable ${env}`,
      );
    }
    const replicaUrl = s.replicaUrl ?? replicaUrlFor(raw.replica.url, `pgferry_${s.name.replace(/-/g, '_')}`);
    return {
      name: s.name,
      passwordHash: toHash(secret, `sources.${i}.passwordHash`),
      replicaUrl,
      replicaDatabase: databaseOfUrl(replicaUrl),
      snapshotsEnabled: s.snapshots.enabled ?? raw.snapshots.enabled,
      schedule: s.snapshots.schedule ?? raw.snapshots.schedule,
      spoolDir: path.join(raw.stateDir, 'spool', s.name),
    };
  });
  const ftpSecret = resolveSecret({
    value: raw.ftp.passwordHash,
    file: raw.ftp.passwordFile,
    env: 'PGFERRY_FTP_PASSWORD',
    field: 'ftp',
  });
  const ftpDefaultPassword = ftpSecret === undefined || ftpSecret === DEFAULT_FTP_PASSWORD;
  return {
    ...raw,
    sourceSettings,
    ftpPasswordHash: toHash(ftpSecret ?? DEFAULT_FTP_PASSWORD, 'ftp.passwordHash'),
    ftpDefaultPassword,
  };
}

export function loadServerConfig(file: string): ServerConfig {
  return resolveServerConfig(loadConfigFile(serverConfigSchema, file));
}
