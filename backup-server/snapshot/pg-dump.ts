/**
 * The schema part of a snapshot, from the pg_dump that matches the replica's PostgreSQL major, run inside
 * the snapshot's exported transaction snapshot. Output is plain SQL: psql's `\restrict` / `\unrestrict`
 * lines are removed so that any client can run it.
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
export async function findPgTool(tool: 'pg_dump', serverMajor: number, pgBinDir?: string): Promise<string> {
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

/** Dumps one schema section at the exported snapshot into `file` (not fsynced: the caller does it). */
export async function dumpSchemaSection(opts: {
  pgDump: string;
  url: string;
  snapshotName: string;
  section: SchemaSection;
  file: string;
}): Promise<SchemaFile> {
  const { dbname, env } = libpqConnection(opts.url);
  const args = [
    '--schema-only',
    `--section=${opts.section}`,
    `--snapshot=${opts.snapshotName}`,
    `--exclude-schema=${METADATA_SCHEMA}`,
    '--no-owner',
    `--dbname=${dbname}`,
  ];
  let stdout: Buffer;
  try {
    ({ stdout } = await run(opts.pgDump, args, {
      env,
      encoding: 'buffer',
      maxBuffer: 1024 * 1024 * 1024,
      timeout: 3_600_000,
    }));
  } catch (e) {
    const stderr = String((e as { stderr?: unknown }).stderr ?? '').trim();
    throw new PgferryError(
      'SNAPSHOT_FAILED',
      `pg_dump --section=${opts.section} failed: ${stderr || (e as Error).message}`,
      { cause: e },
    );
  }
  // latin1 maps bytes 1:1, so the filter keeps any database encoding intact
  const sql = Buffer.from(stdout.toString('latin1').replace(PSQL_RESTRICT_LINE, ''), 'latin1');
  await fs.promises.writeFile(opts.file, sql, { flag: 'wx' });
  return { bytes: sql.length, sha256: createHash('sha256').update(sql).digest('hex') };
}
