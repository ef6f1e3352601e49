/**
 * Sequences after a restore: first the value the snapshot recorded, then, for every column the sequence
 * feeds (serial and identity columns it is owned by, and defaults calling it), at least that column's
 * maximum, so that the restored system can insert new rows at once (guarantee 4).
 */
import type { Client } from 'pg';
import { PgferryError } from '../../shared/errors';
import type { ManifestSequence } from '../../shared/snapshot/manifest';
import { qualified, quoteIdent } from './ident';

export interface SequenceSet {
  sequence: string;
  /** the next value nextval() returns */
  next: string;
  /** what decided it: the snapshot's value or a column's maximum */
  from: 'snapshot' | 'column' | 'unchanged';
}

interface SeqRow {
  seq: string;
  schema: string;
  name: string;
  increment: string;
  fed: { tbl: string; col: string }[] | null;
}

/** Every sequence of the database with the columns it feeds. */
async function sequencesWithColumns(c: Client): Promise<SeqRow[]> {
  const r = await c.query<SeqRow>(
    `SELECT s.seqrelid::regclass::text AS seq, n.nspname AS schema, cl.relname AS name,
            s.seqincrement::text AS increment,
            (SELECT json_agg(DISTINCT jsonb_build_object('tbl', x.tbl, 'col', x.col))
               FROM (SELECT d.refobjid::regclass::text AS tbl, a.attname AS col
                       FROM pg_depend d
                       JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
                      WHERE d.classid = 'pg_class'::regclass AND d.objid = s.seqrelid
                        AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
                     UNION
                     SELECT ad.adrelid::regclass::text, a.attname
                       FROM pg_depend d
                       JOIN pg_attrdef ad ON d.classid = 'pg_attrdef'::regclass AND ad.oid = d.objid
                       JOIN pg_attribute a ON a.attrelid = ad.adrelid AND a.attnum = ad.adnum
                      WHERE d.refclassid = 'pg_class'::regclass AND d.refobjid = s.seqrelid) x) AS fed
       FROM pg_sequence s
       JOIN pg_class cl ON cl.oid = s.seqrelid
       JOIN pg_namespace n ON n.oid = cl.relnamespace
      ORDER BY 1`,
  );
  return r.rows;
}

/** Sets every sequence; returns what was set. */
export async function restoreSequences(c: Client, recorded: ManifestSequence[]): Promise<SequenceSet[]> {
  const byName = new Map(recorded.map((s) => [`${s.schema}.${s.name}`, s]));
  const out: SequenceSet[] = [];
  for (const row of await sequencesWithColumns(c)) {
    const rec = byName.get(`${row.schema}.${row.name}`);
    byName.delete(`${row.schema}.${row.name}`);
    let from: SequenceSet['from'] = 'unchanged';
    if (rec) {
      await c.query('SELECT setval($1::regclass, $2::bigint, $3)', [row.seq, rec.value, rec.isCalled]);
      from = 'snapshot';
    }
    const up = BigInt(row.increment) > 0n;
    let extreme: bigint | null = null;
    for (const f of row.fed ?? []) {
      const agg = up ? 'max' : 'min';
      const m = await c.query<{ v: string | null }>(
        `SELECT ${agg}(${quoteIdent(f.col)})::text AS v FROM ${f.tbl}`,
      );
      const v = m.rows[0].v === null ? null : BigInt(m.rows[0].v.replace(/\..*$/, ''));
      if (v !== null && (extreme === null || (up ? v > extreme : v < extreme))) extreme = v;
    }
    const cur = await c.query<{ last_value: string; is_called: boolean }>(
      `SELECT last_value::text, is_called FROM ${qualified(row.schema, row.name)}`,
    );
    const last = BigInt(cur.rows[0].last_value);
    let next = cur.rows[0].is_called ? last + BigInt(row.increment) : last;
    if (extreme !== null && (up ? next <= extreme : next >= extreme)) {
      await c.query('SELECT setval($1::regclass, $2::bigint, true)', [row.seq, extreme.toString()]);
      next = extreme + BigInt(row.increment);
      from = 'column';
    }
    out.push({ sequence: `${row.schema}.${row.name}`, next: next.toString(), from });
  }
  if (byName.size > 0) {
    throw new PgferryError(
      'RESTORE_FAILED',
      `the snapshot records sequences the restored schema lacks: ${[...byName.keys()].join(', ')}`,
      {
        hint: 'the snapshot is inconsistent: pick another one with --list, and report this with the manifest',
      },
    );
  }
  return out;
}
