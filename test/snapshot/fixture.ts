/**
 * Test fixtures for snapshots: a database on the backup cluster set up the way a replica looks (pgferry
 * metadata, state row, user tables, table_changes), a config for it, and helpers that act as the applier.
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import { promisify } from 'node:util';
import * as zlib from 'node:zlib';
import { pipeline } from 'node:stream/promises';
import { type ClientBase, escapeIdentifier } from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import winston from 'winston';
import YAML from 'yaml';
import { parseConfig } from '../../shared/config/load';
import {
  resolveServerConfig,
  type ServerConfig,
  serverConfigSchema,
} from '../../shared/config/server-config';
import type { LogEntry, Logger } from '../../shared/log';
import { formatLsn, lsnFromBigInt } from '../../shared/lsn';
import type { SnapshotManifest } from '../../shared/snapshot/manifest';
import { migrateMetadata } from '../../backup-server/replica/metadata';
import { createDatabase, dropDatabase, sharedClusters, uniqueName, withClient } from '../harness/db';

export const run = promisify(execFile);

/** The n-th applied position of a test replica. */
export function lsnAt(n: number): string {
  return formatLsn(lsnFromBigInt(0x1000000n + BigInt(n) * 0x100n));
}

export interface TestReplica {
  name: string;
  url: string;
  source: string;
  drop(): Promise<void>;
}

/** A replica database: metadata at LSN 0 and `tables` tables t00… of `rows` rows each. */
export async function makeReplica(
  source: string,
  opts: { tables?: number; rows?: number; setup?: (c: ClientBase) => Promise<void> } = {},
): Promise<TestReplica> {
  const { backup } = sharedClusters();
  const name = uniqueName(`snap_${source.replace(/-/g, '_')}`);
  const url = await createDatabase(backup, name);
  await withClient(url, async (c) => {
    await migrateMetadata(c);
    await c.query(
      `INSERT INTO pgferry.state (source, system_identifier, sync_id, applied_lsn, app_version, schema_hash)
       VALUES ($1, '7311111111111111111', 'sync-1', $2, '5.2.1', 'schema-1')`,
      [source, lsnAt(0)],
    );
    for (let i = 0; i < (opts.tables ?? 0); i++) {
      const t = `t${String(i).padStart(2, '0')}`;
      await c.query(`CREATE TABLE ${t} (id serial PRIMARY KEY, val int NOT NULL, txt text)`);
      await c.query(
        `INSERT INTO ${t} (val, txt) SELECT g, md5(g::text) FROM generate_series(1, ${opts.rows ?? 100}) g`,
      );
    }
    await opts.setup?.(c);
    await c.query(
      `INSERT INTO pgferry.table_changes SELECT schemaname, tablename, $1 FROM pg_tables
        WHERE schemaname NOT IN ('pg_catalog', 'information_schema', 'pgferry')`,
      [lsnAt(0)],
    );
  });
  return { name, url, source, drop: () => dropDatabase(backup, name) };
}

/** Acts as the applier: runs `sql` and records the change of `tables` at LSN `n`, in one transaction. */
export async function applyChange(url: string, n: number, tables: string[], sql = ''): Promise<void> {
  await withClient(url, async (c) => {
    await c.query('BEGIN');
    if (sql) await c.query(sql);
    for (const t of tables) {
      await c.query(
        `INSERT INTO pgferry.table_changes VALUES ('public', $1, $2)
         ON CONFLICT (schema_name, table_name) DO UPDATE SET last_change_lsn = excluded.last_change_lsn`,
        [t, lsnAt(n)],
      );
    }
    await c.query('UPDATE pgferry.state SET applied_lsn = $1', [lsnAt(n)]);
    await c.query('COMMIT');
  });
}

export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `pgferry-${prefix}-`));
}

export interface ConfigOptions {
  dir: string;
  stateDir: string;
  sources: { name: string; url: string; schedule?: string }[];
  snapshots?: Record<string, unknown>;
}

export function rawConfig(o: ConfigOptions): Record<string, unknown> {
  return {
    stateDir: o.stateDir,
    tls: 'off',
    sources: o.sources.map((s) => ({
      name: s.name,
      passwordHash: 'test-password',
      replicaUrl: s.url,
      ...(s.schedule ? { snapshots: { schedule: s.schedule } } : {}),
    })),
    snapshots: { dir: o.dir, minFreeBytes: 0, minFreePercent: 0, ...o.snapshots },
    log: { level: 'warn', format: 'json' },
  };
}

export function makeConfig(o: ConfigOptions): ServerConfig {
  return resolveServerConfig(parseConfig(serverConfigSchema, rawConfig(o)));
}

export function writeConfigFile(file: string, o: ConfigOptions): string {
  fs.writeFileSync(file, YAML.stringify(rawConfig(o)));
  return file;
}

/** A logger that keeps every entry for assertions. */
export function capturingLogger(): { logger: Logger; entries: LogEntry[] } {
  const entries: LogEntry[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      entries.push(JSON.parse(chunk.toString('utf8')) as LogEntry);
      done();
    },
  });
  const logger = winston.createLogger({
    level: 'debug',
    format: winston.format.combine(winston.format.timestamp(), winston.format.json()),
    transports: [new winston.transports.Stream({ stream })],
  });
  return { logger, entries };
}

export const CLI = path.resolve(__dirname, '../../dist/shared/cli/main.js');

/** Runs the built CLI; never throws on a non-zero exit. */
export async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  if (!fs.existsSync(CLI)) throw new Error(`${CLI} is missing: run "npm run build" before these tests`);
  try {
    const { stdout, stderr } = await run(process.execPath, [CLI, ...args], { timeout: 60_000 });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code?: number; stdout?: string; stderr?: string };
    return {
      code: typeof err.code === 'number' ? err.code : 1,
      stdout: err.stdout ?? '',
      stderr: err.stderr ?? '',
    };
  }
}

/** Folder names under a source's snapshot folder (complete and partial). */
export function entries(dir: string, source: string): string[] {
  try {
    return fs.readdirSync(path.join(dir, source)).sort();
  } catch {
    return [];
  }
}

/** Restores a snapshot into an empty database the plain way: schema-pre, COPY each file, schema-post, setval. */
export async function restoreSnapshot(
  snapshotDir: string,
  manifest: SnapshotManifest,
  url: string,
): Promise<void> {
  await withClient(url, async (c) => {
    await c.query(fs.readFileSync(path.join(snapshotDir, manifest.schema.pre.file), 'utf8'));
    for (const t of manifest.tables) {
      const cols = t.columns?.length ? ` (${t.columns.map((x) => escapeIdentifier(x)).join(', ')})` : '';
      const sql = `COPY ${escapeIdentifier(t.schema)}.${escapeIdentifier(t.name)}${cols} FROM STDIN`;
      await pipeline(
        fs.createReadStream(path.join(snapshotDir, t.file)),
        zlib.createGunzip(),
        c.query(copyFrom(sql)),
      );
    }
    await c.query(fs.readFileSync(path.join(snapshotDir, manifest.schema.post.file), 'utf8'));
    for (const s of manifest.sequences) {
      await c.query('SELECT setval(format($$%I.%I$$, $1::text, $2::text)::regclass, $3::bigint, $4)', [
        s.schema,
        s.name,
        s.value,
        s.isCalled,
      ]);
    }
  });
}
