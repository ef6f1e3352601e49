/** The agent's configuration (agent.yaml). Every default lives here. */
import { z } from 'zod';
import { PgferryError } from '../errors';
import { bytes, httpSchema, logSchema, port, sourceName } from './common';
import { loadConfigFile, resolveSecret } from './load';

export const agentConfigSchema = z.object({
  source: z.object({
    name: sourceName,
    /** connection to the primary database (a superuser or a role with REPLICATION and ownership of the tables) */
    url: z.string().min(1),
    publication: z
      .string()
      .regex(/^[a-z_][a-z0-9_]{0,62}$/, 'expected a lowercase SQL identifier')
      .default('pgferry'),
    slot: z
      .string()
      .regex(/^[a-z0-9_]{1,63}$/, 'expected lowercase letters, digits and "_" (PostgreSQL slot name rules)')
      .default('pgferry'),
    /** the monitored application's version, recorded in every snapshot: a fixed string ... */
    appVersion: z.string().optional(),
    /** ... or a query run on the primary returning one text value */
    appVersionQuery: z.string().optional(),
  }),
  server: z.object({
    host: z.string().min(1),
    port: port.default(50000),
    password: z.string().optional(),
    passwordFile: z.string().optional(),
    tls: z
      .union([
        z.literal('off'),
        z.object({
          /** SHA-256 fingerprint of the server certificate (printed by the server with tls: auto) */
          fingerprint: z
            .string()
            .regex(
              /^([0-9A-Fa-f]{2}:?){32}$/,
              'expected a SHA-256 fingerprint: 64 hex digits, colons allowed',
            )
            .optional(),
          caFile: z.string().optional(),
          serverName: z.string().optional(),
        }),
      ])
      .default('off'),
  }),
  heartbeat: z.object({ intervalSeconds: z.number().positive().default(5) }).prefault({}),
  sequences: z.object({ intervalSeconds: z.number().positive().default(10) }).prefault({}),
  /** how often the primary's schema hash is sent for comparison with the replica's */
  schemaCheck: z.object({ intervalSeconds: z.number().positive().default(60) }).prefault({}),
  maxRetainedWalBytes: bytes.default(8 * 1024 ** 3),
  walCheckIntervalSeconds: z.number().positive().default(10),
  reconnect: z
    .object({
      minDelayMs: z.number().int().min(10).default(500),
      maxDelayMs: z.number().int().min(10).default(30_000),
    })
    .prefault({}),
  initialSync: z
    .object({
      /** directory of pg_dump; default: found on PATH or under /usr/lib/postgresql/<major>/bin */
      pgBinDir: z.string().optional(),
      copyChunkBytes: bytes.default(256 * 1024),
    })
    .prefault({}),
  maxFrameBytes: bytes.default(64 * 1024 * 1024),
  /**
   * How long a committed transaction may wait in the agent for others to be sent with it, counted from
   * its commit on the primary. Every batch becomes one replica transaction with its bookkeeping on the
   * backup server: under a steady load of small transactions a few ms save a third to a half of the
   * backup side's CPU (benchmark, 60 s of pgbench: server 9.4-10.2 s -> 5.4 s at 3 ms, 4.2-4.5 s at
   * 5 ms; replica 14.8-15.5 -> 10.5-11.4 / 9.0-9.6 s). The agent also reads the primary's stream at
   * most once per this interval while only a trickle arrives (agent/read-pacer.ts): a quarter less agent
   * CPU beside the primary. 0: each commit is read and sent at once.
   */
  maxBatchDelayMs: z.number().int().min(0).max(1000).default(3),
  /**
   * Send a transaction to the backup server while it still runs once it outgrows the primary's
   * logical_decoding_work_mem (PostgreSQL 14+): the backup server keeps it on its own disk until it
   * commits. Off: the primary's walsender spills it to the primary's disk (pg_replslot) and sends it
   * only after the commit.
   */
  streamLargeTransactions: z.boolean().default(true),
  http: httpSchema(50081),
  log: logSchema,
});

export type AgentConfigRaw = z.output<typeof agentConfigSchema>;
export interface AgentConfig extends AgentConfigRaw {
  serverPassword: string;
}

export function resolveAgentConfig(raw: AgentConfigRaw): AgentConfig {
  if (raw.source.appVersion !== undefined && raw.source.appVersionQuery !== undefined) {
    throw new PgferryError('CONFIG_INVALID', 'source: set appVersion or appVersionQuery, not both');
  }
  const serverPassword = resolveSecret({
    value: raw.server.password,
    file: raw.server.passwordFile,
    env: 'PGFERRY_PASSWORD',
    field: 'server',
  });
  if (!serverPassword) {
    throw new PgferryError(
      'SECRET_MISSING',
      'server: no password: set server.passwordFile, server.password, or the environment variable PGFERRY_PASSWORD',
    );
  }
  return { ...raw, serverPassword };
}

export function loadAgentConfig(file: string): AgentConfig {
  return resolveAgentConfig(loadConfigFile(agentConfigSchema, file));
}
