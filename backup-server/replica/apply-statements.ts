/**
 * The fixed statements of an apply session besides the per-table ones (sql.ts): transaction control, the
 * applied position and changed tables in pgferry's metadata (metadata.ts), sequences, DDL replay's
 * search_path. Named statements: each is parsed once per replica connection, then only bound and executed.
 */
import type { NamedStatement } from './pipeline-batch';

const named = (name: string, text: string): NamedStatement => ({ name, text });

export const BEGIN = named('pgf_begin', 'BEGIN');
export const COMMIT = named('pgf_commit', 'COMMIT');

/** $1 applied LSN, $2 the source commit time in µs since the epoch or null (then it is left as it is) */
export const SET_APPLIED = named(
  'pgf_state',
  `UPDATE pgferry.state SET applied_lsn = $1::pg_lsn, applied_at = now(),
     last_commit_time = coalesce(to_timestamp($2::numeric / 1000000), last_commit_time) WHERE id = 1`,
);

/** tables marked changed per statement at most; a group touching more runs it several times */
export const TABLE_CHANGES_ROWS = 8;

const tableChanges: NamedStatement[] = [];

/** Marks `count` tables changed at one LSN: $1 the LSN, then schema and table name per table. */
export function markTablesChanged(count: number): NamedStatement {
  if (count < 1 || count > TABLE_CHANGES_ROWS)
    throw new RangeError(`1..${TABLE_CHANGES_ROWS} tables, not ${count}`);
  let s = tableChanges[count];
  if (!s) {
    const rows = Array.from({ length: count }, (_, i) => `($${2 * i + 2}, $${2 * i + 3}, $1::pg_lsn)`);
    s = named(
      `pgf_changed_${count}`,
      `INSERT INTO pgferry.table_changes (schema_name, table_name, last_change_lsn) VALUES ${rows.join(', ')}
       ON CONFLICT (schema_name, table_name) DO UPDATE SET last_change_lsn = excluded.last_change_lsn`,
    );
    tableChanges[count] = s;
  }
  return s;
}

/** After DDL: every user table counts as changed at $1 (a snapshot may hard-link none of them). */
export const MARK_ALL_TABLES_CHANGED = named(
  'pgf_changed_all',
  `INSERT INTO pgferry.table_changes (schema_name, table_name, last_change_lsn)
   SELECT schemaname, tablename, $1::pg_lsn FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema', 'pgferry')
   ON CONFLICT (schema_name, table_name) DO UPDATE SET last_change_lsn = excluded.last_change_lsn`,
);

/**
 * Where the replica's WAL is: the end of what was inserted (run right after a COMMIT: the commit record
 * is inside it) and what is flushed (earlier commits up to it are durable).
 */
export const WAL_POSITION = named(
  'pgf_wal',
  'SELECT pg_current_wal_insert_lsn()::text, pg_current_wal_flush_lsn()::text',
);

/** $1 qualified sequence name, $2 last value, $3 is_called ('true'/'false') */
export const SET_SEQUENCE = named(
  'pgf_setval',
  'SELECT setval(c.oid, $2::bigint, $3::boolean) FROM pg_class c WHERE c.oid = to_regclass($1)',
);

/** $1 schema, $2 sequence, $3 last value, $4 is_called, $5 the LSN it was reported at or null */
export const RECORD_SEQUENCE = named(
  'pgf_sequence',
  `INSERT INTO pgferry.sequences (schema_name, sequence_name, last_value, is_called, reported_lsn)
   VALUES ($1, $2, $3::bigint, $4::boolean, $5::pg_lsn)
   ON CONFLICT (schema_name, sequence_name) DO UPDATE SET last_value = excluded.last_value,
     is_called = excluded.is_called, reported_lsn = excluded.reported_lsn, reported_at = now()`,
);

/** DDL replay: the search_path the command ran with, for the rest of the replica transaction */
export const SET_SEARCH_PATH = named('pgf_search_path', `SELECT set_config('search_path', $1, true)`);
export const RESET_SEARCH_PATH = named('pgf_reset_search_path', 'RESET search_path');
