/**
 * A fingerprint of everything a schema-only pg_dump of the replica reads: for every catalog table, the
 * row count and a 64-bit sum of hashes of each row version's xmin. Any DDL writes new row versions, each
 * with the xid of the transaction that wrote it, which no earlier row can have, so it changes the sum (or,
 * for a delete, the count); the one in-place catalog change that alters a dump, an index becoming valid
 * (CREATE INDEX CONCURRENTLY), is covered by hashing pg_index's flags. Read inside the snapshot
 * transaction, it describes the schema at the snapshot's LSN. When it equals the previous
 * snapshot's, the schema files are hard-linked instead of dumped again.
 *
 * Errs on the side of dumping: TRUNCATE, VACUUM FULL or DDL in temporary tables also change it.
 */
import { createHash } from 'node:crypto';
import type { ClientBase } from 'pg';
import { quoteIdent, quoteLiteral } from '../../shared/sql-ident';

/** Catalogs that change without DDL of this database, or that a schema-only dump of it never shows. */
const IGNORED = [
  'pg_statistic',
  'pg_statistic_ext_data',
  'pg_largeobject',
  'pg_shdepend',
  'pg_database',
  'pg_replication_origin',
];

export async function schemaFingerprint(client: ClientBase, salt: string): Promise<string> {
  const cats = await client.query<{ name: string }>(
    `SELECT c.relname AS name FROM pg_catalog.pg_class c
      WHERE c.relnamespace = 'pg_catalog'::regnamespace AND c.relkind = 'r'
        AND c.relname <> ALL($1) AND has_table_privilege(c.oid, 'SELECT')
      ORDER BY 1`,
    [IGNORED],
  );
  const parts = cats.rows.map(
    ({ name }) =>
      `SELECT ${quoteLiteral(name)} AS t, count(*)::text AS n,
              coalesce(sum(hashtextextended(xmin::text, 0)), 0)::text AS h
         FROM pg_catalog.${quoteIdent(name)}`,
  );
  parts.push(
    `SELECT 'pg_index flags', count(*)::text,
            coalesce(sum(hashtextextended(concat_ws(',', indexrelid, indisvalid, indisready, indislive), 0)), 0)::text
       FROM pg_catalog.pg_index`,
  );
  const r = await client.query<{ t: string; n: string; h: string }>(parts.join('\nUNION ALL\n'));
  const hash = createHash('sha256').update(salt);
  for (const row of r.rows.sort((a, b) => (a.t < b.t ? -1 : 1))) hash.update(`\n${row.t}:${row.n}:${row.h}`);
  return hash.digest('hex');
}
