/**
 * The demo's proof: two databases compared table by table (row count and md5 of the sorted rows, the
 * same fingerprint the tests use) and sequence by sequence.
 */
import { Client } from 'pg';

export interface TableComparison {
  table: string;
  rows: [number, number];
  md5: [string, string];
  same: boolean;
}

export interface SequenceComparison {
  sequence: string;
  values: [string | null, string | null];
  /** the restored value is at least the original one: new rows get fresh ids */
  safe: boolean;
}

export interface Comparison {
  tables: TableComparison[];
  sequences: SequenceComparison[];
  identical: boolean;
}

async function withClient<T>(url: string, fn: (c: Client) => Promise<T>): Promise<T> {
  const c = new Client({ connectionString: url });
  c.on('error', () => undefined); // a lost connection rejects the query; never crash the demo
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

async function fingerprints(
  url: string,
): Promise<{ tables: Map<string, { rows: number; md5: string }>; sequences: Map<string, string | null> }> {
  return withClient(url, async (c) => {
    const names = await c.query<{ t: string }>(
      `SELECT format('%I.%I', schemaname, tablename) AS t FROM pg_tables
        WHERE schemaname NOT IN ('pg_catalog', 'information_schema', 'pgferry') ORDER BY 1`,
    );
    const tables = new Map<string, { rows: number; md5: string }>();
    for (const { t } of names.rows) {
      const r = await c.query<{ n: string; md5: string | null }>(
        `SELECT count(*)::text AS n, md5(coalesce(string_agg(r, E'\\n' ORDER BY r), '')) AS md5
           FROM (SELECT x::text AS r FROM ${t} x) s`,
      );
      tables.set(t, { rows: Number(r.rows[0].n), md5: r.rows[0].md5 ?? '' });
    }
    const seq = await c.query<{ s: string; v: string | null }>(
      `SELECT format('%I.%I', schemaname, sequencename) AS s, last_value::text AS v FROM pg_sequences
        WHERE schemaname <> 'pgferry' ORDER BY 1`,
    );
    return { tables, sequences: new Map(seq.rows.map((r) => [r.s, r.v])) };
  });
}

export async function compareDatabases(originalUrl: string, copyUrl: string): Promise<Comparison> {
  const [a, b] = await Promise.all([fingerprints(originalUrl), fingerprints(copyUrl)]);
  const tables = [...new Set([...a.tables.keys(), ...b.tables.keys()])].sort().map((table) => {
    const x = a.tables.get(table) ?? { rows: -1, md5: 'missing' };
    const y = b.tables.get(table) ?? { rows: -1, md5: 'missing' };
    return {
      table,
      rows: [x.rows, y.rows] as [number, number],
      md5: [x.md5, y.md5] as [string, string],
      same: x.rows === y.rows && x.md5 === y.md5,
    };
  });
  const sequences = [...a.sequences.keys()].sort().map((sequence) => {
    const x = a.sequences.get(sequence) ?? null;
    const y = b.sequences.get(sequence) ?? null;
    return {
      sequence,
      values: [x, y] as [string | null, string | null],
      safe: x === null || (y !== null && BigInt(y) >= BigInt(x)),
    };
  });
  return { tables, sequences, identical: tables.every((t) => t.same) && sequences.every((s) => s.safe) };
}
