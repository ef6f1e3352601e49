/**
 * The schema part of a snapshot, from the pg_dump that matches the replica's PostgreSQL major, run inside
 * the snapshot's exported transaction snapshot: one schema-only archive (the catalogs are read once), split
 * into its pre-data and post-data sections by pg_restore, which reads the archive and needs no connection.
 * Output is plain SQL: psql's `\restrict` / `\unrestrict` lines are removed so that any client can run it.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { PgferryError } from '../../shared/errors';
import { METADATA_SCHEMA } from '../replica/metadata';

const run = promisify(execFile);

export type SchemaSection = 'pre-data' | 'post-data';

const found = new Map<string, string>();

async function majorOf(binary: string): Promise<number | null> {
  try {
    const { stdout } = await run(binary, ['--version'], { timeout: 10_000 });
    const m = /\s(\d+)(?:\.\d+)?/.exec(stdout);
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/**
 * A PostgreSQL client program able to read a server of `serverMajor`: from `pgBinDir` when given, else
 * /usr/lib/postgresql/<major>/bin, else PATH (when its major is at least the server's).
 */
export async function findPgTool(
  tool: 'pg_dump' | 'pg_restore',
  serverMajor: number,
  pgBinDir?: string,
): Promise<string> {
  const key = `${tool}:${serverMajor}:${pgBinDir ?? ''}`;
  const cached = found.get(key);
  if (cached) return cached;
  const candidates = pgBinDir
    ? [path.join(pgBinDir, tool)]
    : [path.join('/usr/lib/postgresql', String(serverMajor), 'bin', tool), tool];
  for (const c of candidates) {
    const major = await majorOf(c);
    if (major !== null && major >= serverMajor) {
      found.set(key, c);
      return c;
    }
  }
  throw new PgferryError(
    'SNAPSHOT_FAILED',
    `no ${tool} for PostgreSQL ${serverMajor} found (tried ${candidates.join(', ')})`,
    {
      hint: `install the PostgreSQL ${serverMajor} client (e.g. postgresql-client-${serverMajor}) or set snapshots.pgBinDir`,
    },
  );
}

/** The libpq URL without its password, and the environment carrying the password instead (not on argv). */
export function libpqConnection(url: string): { dbname: string; env: NodeJS.ProcessEnv } {
  const u = new URL(url);
  const env: NodeJS.ProcessEnv = { ...process.env, PGAPPNAME: 'pgferry-snapshot' };
  if (u.password) {
    env.PGPASSWORD = decodeURIComponent(u.password);
    u.password = '';
  }
  return { dbname: u.toString(), env };
}

export interface SchemaFile {
  bytes: number;
  sha256: string;
}

const PSQL_RESTRICT_LINE = /^\\(un)?restrict\b.*$\n?/gm;

async function runTool(
  binary: string,
  args: string[],
  what: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<Buffer> {
  try {
    const { stdout } = await run(binary, args, {
      env,
      encoding: 'buffer',
      maxBuffer: 1024 * 1024 * 1024,
      timeout: 3_600_000,
    });
    return stdout;
  } catch (e) {
    const stderr = String((e as { stderr?: unknown }).stderr ?? '').trim();
    if (/No space left on device|Disk quota exceeded/i.test(stderr))
      throw new PgferryError('DISK_FULL', `the snapshot volume ran full during ${what}: ${stderr}`, {
        cause: e,
      });
    throw new PgferryError('SNAPSHOT_FAILED', `${what} failed: ${stderr || (e as Error).message}`, {
      cause: e,
    });
  }
}

/** Writes one section of the schema archive as plain SQL into `file` (which must not exist). */
async function writeSection(
  pgRestore: string,
  archive: string,
  section: SchemaSection,
  file: string,
): Promise<SchemaFile> {
  const stdout = await runTool(
    pgRestore,
    [`--section=${section}`, '--file=-', archive],
    `pg_restore --section=${section}`,
  );
  // latin1 maps bytes 1:1, so the filter keeps any database encoding intact
  const sql = Buffer.from(stdout.toString('latin1').replace(PSQL_RESTRICT_LINE, ''), 'latin1');
  await fs.promises.writeFile(file, sql, { flag: 'wx' });
  return { bytes: sql.length, sha256: createHash('sha256').update(sql).digest('hex') };
}

/**
 * Dumps the schema at the exported snapshot into `preFile` and `postFile` (not fsynced: the caller does it),
 * through a schema-only archive `archive` that is removed afterwards.
 */
export async function dumpSchema(opts: {
  pgDump: string;
  pgRestore: string;
  url: string;
  snapshotName: string;
  archive: string;
  preFile: string;
  postFile: string;
}): Promise<{ pre: SchemaFile; post: SchemaFile }> {
  const { dbname, env } = libpqConnection(opts.url);
  const args = [
    '--schema-only',
    '--format=custom',
    `--file=${opts.archive}`,
    `--snapshot=${opts.snapshotName}`,
    `--exclude-schema=${METADATA_SCHEMA}`,
    '--no-owner',
    `--dbname=${dbname}`,
  ];
  try {
    await runTool(opts.pgDump, args, 'pg_dump --schema-only', env);
    const [pre, post] = await Promise.all([
      writeSection(opts.pgRestore, opts.archive, 'pre-data', opts.preFile),
      writeSection(opts.pgRestore, opts.archive, 'post-data', opts.postFile),
    ]);
    return { pre, post };
  } finally {
    await fs.promises.rm(opts.archive, { force: true });
  }
}
