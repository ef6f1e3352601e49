/**
 * The database a snapshot is restored into (--target URL): what is there, and making it ready. A missing
 * database is created through a maintenance database on the same server; with --force an existing one is
 * dropped and created again.
 */
import { Client } from 'pg';
import { PgferryError } from '../../shared/errors';
import { redactUrl } from '../../shared/log';
import { quoteIdent } from './ident';
import type { TargetFacts } from './preflight';

export function databaseOf(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new PgferryError('USAGE', `--target "${redactUrl(url)}" is not a URL`, {
      hint: 'pass --target postgres://user@host:5432/dbname',
    });
  }
  if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') {
    throw new PgferryError('USAGE', `--target must be a postgres:// URL, got "${u.protocol}"`, {
      hint: 'pass --target postgres://user@host:5432/dbname',
    });
  }
  const db = decodeURIComponent(u.pathname.replace(/^\//, ''));
  if (!db) {
    throw new PgferryError('USAGE', `--target "${redactUrl(url)}" names no database`, {
      hint: 'put the database name at the end of the URL: postgres://user@host:5432/dbname',
    });
  }
  return db;
}

export function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${encodeURIComponent(database)}`;
  return u.toString();
}

function unavailable(url: string, e: unknown): PgferryError {
  return new PgferryError(
    'TARGET_UNAVAILABLE',
    `cannot use the target ${redactUrl(url)}: ${e instanceof Error ? e.message : String(e)}`,
    { cause: e },
  );
}

async function connect(url: string): Promise<Client> {
  const c = new Client({ connectionString: url, application_name: 'pgferry-recover' });
  try {
    await c.connect();
  } catch (e) {
    await c.end().catch(() => undefined);
    throw e;
  }
  return c;
}

/** A connection to a database that surely exists on the target's server, for CREATE/DROP DATABASE. */
async function maintenance(url: string, target: string): Promise<Client> {
  let last: unknown;
  for (const db of ['postgres', 'template1']) {
    if (db === target) continue;
    try {
      return await connect(withDatabase(url, db));
    } catch (e) {
      last = e;
    }
  }
  throw unavailable(url, last);
}

export async function userTables(c: Client): Promise<string[]> {
  const r = await c.query<{ t: string }>(
    `SELECT format('%I.%I', n.nspname, c.relname) AS t
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
        AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
      ORDER BY 1`,
  );
  return r.rows.map((x) => x.t);
}

async function serverMajor(c: Client): Promise<number> {
  const r = await c.query<{ v: string }>(`SELECT current_setting('server_version_num') AS v`);
  return Math.floor(Number(r.rows[0].v) / 10000);
}

/** What the target holds now. */
export async function inspectTarget(url: string): Promise<TargetFacts> {
  const database = databaseOf(url);
  let c: Client;
  try {
    c = await connect(url);
  } catch (e) {
    if ((e as { code?: string }).code !== '3D000') throw unavailable(url, e);
    const m = await maintenance(url, database);
    try {
      return { database, exists: false, userTables: [], serverMajor: await serverMajor(m) };
    } finally {
      await m.end();
    }
  }
  try {
    return { database, exists: true, userTables: await userTables(c), serverMajor: await serverMajor(c) };
  } catch (e) {
    throw unavailable(url, e);
  } finally {
    await c.end();
  }
}

/** Creates the database when missing; with `replace`, drops it first (sessions on it are terminated). */
export async function prepareTarget(url: string, facts: TargetFacts, replace: boolean): Promise<void> {
  if (facts.exists && !replace) return;
  const m = await maintenance(url, facts.database);
  try {
    if (facts.exists) await m.query(`DROP DATABASE IF EXISTS ${quoteIdent(facts.database)} WITH (FORCE)`);
    await m.query(`CREATE DATABASE ${quoteIdent(facts.database)} TEMPLATE template0`);
  } catch (e) {
    throw unavailable(url, e);
  } finally {
    await m.end();
  }
}
