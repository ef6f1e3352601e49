/**
 * Per-test-file helpers: the shared clusters from the global setup, fresh databases that are always
 * dropped, and small query helpers.
 */
import { randomBytes } from 'node:crypto';
import { Client } from 'pg';
import { Cluster, type ClusterInfo } from './cluster';

export interface TestClusters {
  primary: Cluster;
  backup: Cluster;
}

export function sharedClusters(): TestClusters {
  const raw = process.env.PGFERRY_TEST_CLUSTERS;
  if (!raw) throw new Error('PGFERRY_TEST_CLUSTERS is not set: run the tests through jest (global setup)');
  const parsed = JSON.parse(raw) as { primary: ClusterInfo; backup: ClusterInfo };
  return { primary: new Cluster(parsed.primary), backup: new Cluster(parsed.backup) };
}

export function uniqueName(prefix: string): string {
  return `${prefix}_${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`.toLowerCase();
}

export async function withClient<T>(url: string, fn: (c: Client) => Promise<T>): Promise<T> {
  const c = new Client({ connectionString: url });
  // a backend terminated while the client is idle (a resync swapping the database it polls) reports
  // through the next query's rejection, not as an unhandled 'error' event that fails whichever test runs
  c.on('error', () => undefined);
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

export async function query<T extends Record<string, unknown> = Record<string, unknown>>(
  url: string,
  sql: string,
  params: unknown[] = [],
): Promise<T[]> {
  return withClient(url, async (c) => (await c.query(sql, params)).rows as T[]);
}

/** Creates an empty database; drop it (and anything that holds it) with `dropDatabase`. */
export async function createDatabase(cluster: Cluster, name: string): Promise<string> {
  await query(cluster.url(), `CREATE DATABASE "${name}"`);
  return cluster.url(name);
}

export async function dropDatabase(cluster: Cluster, name: string): Promise<void> {
  await withClient(cluster.url(), async (c) => {
    await c.query(
      `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = $1 AND NOT active`,
      [name],
    );
    await c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  });
}

/** Polls `check` until it returns true or `timeoutMs` passes; fails with `what` and the last value seen. */
export async function waitFor(
  what: string,
  check: () => Promise<boolean> | boolean,
  timeoutMs = 30_000,
  intervalMs = 100,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  while (Date.now() < deadline) {
    try {
      if (await check()) return;
    } catch (e) {
      lastErr = e;
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new Error(
    `timed out after ${timeoutMs} ms waiting for ${what}${lastErr ? `: ${String(lastErr)}` : ''}`,
  );
}

/**
 * An order-independent fingerprint of a table's contents: md5 over the rows' text, sorted.
 * Equal fingerprints on primary and replica mean equal contents, duplicates included.
 */
export async function tableHash(url: string, table: string): Promise<{ count: number; md5: string }> {
  const rows = await query<{ count: string; md5: string | null }>(
    url,
    `SELECT count(*)::text AS count, md5(coalesce(string_agg(r, E'\\n' ORDER BY r), '')) AS md5
       FROM (SELECT t::text AS r FROM ${table} t) s`,
  );
  return { count: Number(rows[0].count), md5: rows[0].md5 ?? '' };
}

export async function userTables(url: string): Promise<string[]> {
  const rows = await query<{ t: string }>(
    url,
    `SELECT format('%I.%I', schemaname, tablename) AS t FROM pg_tables
      WHERE schemaname NOT IN ('pg_catalog', 'information_schema', 'pgferry') ORDER BY 1`,
  );
  return rows.map((r) => r.t);
}
