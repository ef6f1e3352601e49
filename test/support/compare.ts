/** Equality of a primary database and its replica, table by table (ordered row hashes). */
import { query, tableHash, userTables, waitFor } from '../harness/db';

export async function tablesDiffer(primaryUrl: string, replicaUrl: string): Promise<string[]> {
  const tables = await userTables(primaryUrl);
  const diffs: string[] = [];
  const replicaTables = await userTables(replicaUrl).catch(() => tables);
  for (const t of replicaTables) if (!tables.includes(t)) diffs.push(`${t}: only on the replica`);
  for (const t of tables) {
    const [a, b] = await Promise.all([
      tableHash(primaryUrl, t),
      tableHash(replicaUrl, t).catch(() => ({ count: -1, md5: 'missing' })),
    ]);
    if (a.count !== b.count || a.md5 !== b.md5)
      diffs.push(`${t}: primary ${a.count} rows ${a.md5}, replica ${b.count} rows ${b.md5}`);
  }
  return diffs;
}

export async function waitUntilEqual(
  primaryUrl: string,
  replicaUrl: string,
  timeoutMs = 30_000,
): Promise<void> {
  let last: string[] = [];
  try {
    await waitFor(
      'the replica to equal the primary',
      async () => {
        last = await tablesDiffer(primaryUrl, replicaUrl);
        return last.length === 0;
      },
      timeoutMs,
      200,
    );
  } catch (e) {
    throw new Error(`${(e as Error).message}\n${last.join('\n')}`);
  }
}

export async function replicaAppliedLsn(replicaUrl: string): Promise<string | null> {
  try {
    const r = await query<{ l: string }>(replicaUrl, 'SELECT applied_lsn::text AS l FROM pgferry.state');
    return r[0]?.l ?? null;
  } catch {
    return null;
  }
}
