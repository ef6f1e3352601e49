/**
 * What a snapshot reads from a replica inside its transaction snapshot: the user tables (with their columns
 * and last change LSN) and the sequences (the agent's latest report merged with the replica's own values).
 */
import type { ClientBase } from 'pg';
import type { ManifestSequence } from '../../shared/snapshot/manifest';
import { qualifiedName } from '../../shared/sql-ident';
import { METADATA_SCHEMA } from '../replica/metadata';

export interface ReplicaTable {
  schema: string;
  name: string;
  /** non-generated columns in attnum order */
  columns: string[];
  /** on-disk size, to start the big tables first */
  relationBytes: number;
  /** null when the applier never recorded a change: the table must be written */
  lastChangeLsn: string | null;
}

const SYSTEM_SCHEMAS = `('pg_catalog', 'information_schema', '${METADATA_SCHEMA}')`;

/** Ordinary tables and leaf partitions, without extension members, biggest first. */
export async function listReplicaTables(client: ClientBase): Promise<ReplicaTable[]> {
  const r = await client.query<{
    schema: string;
    name: string;
    columns: string[] | null;
    relation_bytes: string;
    last_change_lsn: string | null;
  }>(
    `SELECT n.nspname AS schema, c.relname AS name,
            ARRAY(SELECT a.attname::text FROM pg_attribute a
                   WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
                   ORDER BY a.attnum) AS columns,
            pg_relation_size(c.oid)::text AS relation_bytes,
            tc.last_change_lsn::text AS last_change_lsn
       FROM pg_class c
       JOIN pg_namespace n ON n.oid = c.relnamespace
       LEFT JOIN ${METADATA_SCHEMA}.table_changes tc ON tc.schema_name = n.nspname AND tc.table_name = c.relname
      WHERE c.relkind = 'r' AND c.relpersistence = 'p'
        AND n.nspname NOT IN ${SYSTEM_SCHEMAS} AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
        AND NOT EXISTS (SELECT 1 FROM pg_depend d
                         WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
      ORDER BY pg_relation_size(c.oid) DESC, 1, 2`,
  );
  return r.rows.map((row) => ({
    schema: row.schema,
    name: row.name,
    columns: row.columns ?? [],
    relationBytes: Number(row.relation_bytes),
    lastChangeLsn: row.last_change_lsn,
  }));
}

/** Keeps the listed tables from being dropped or altered by the applier until the snapshot ends. */
export async function lockTables(client: ClientBase, tables: ReplicaTable[]): Promise<void> {
  const batch = 500;
  for (let i = 0; i < tables.length; i += batch) {
    const names = tables.slice(i, i + batch).map((t) => qualifiedName(t.schema, t.name));
    await client.query(`LOCK TABLE ${names.join(', ')} IN ACCESS SHARE MODE`);
  }
}

interface SequencePosition {
  value: bigint;
  isCalled: boolean;
}

/**
 * The further of two positions in the sequence's direction: a higher value (a lower one for a descending
 * sequence), and at equal values the one already called.
 */
export function furtherPosition(
  a: SequencePosition | null,
  b: SequencePosition | null,
  ascending: boolean,
): SequencePosition | null {
  if (!a) return b;
  if (!b) return a;
  if (a.value !== b.value) return a.value > b.value === ascending ? a : b;
  return a.isCalled ? a : b;
}

/**
 * Every sequence of the replica with the furthest of: the agent's latest report (pgferry.sequences) and
 * the replica's own last value. A sequence never used gets its start value, not called.
 */
export async function readSequences(client: ClientBase): Promise<ManifestSequence[]> {
  const r = await client.query<{
    schema: string;
    name: string;
    start_value: string;
    increment_by: string;
    local_value: string | null;
    reported_value: string | null;
    reported_is_called: boolean | null;
  }>(
    `SELECT s.schemaname AS schema, s.sequencename AS name, s.start_value::text, s.increment_by::text,
            s.last_value::text AS local_value, ps.last_value::text AS reported_value,
            ps.is_called AS reported_is_called
       FROM pg_sequences s
       LEFT JOIN ${METADATA_SCHEMA}.sequences ps ON ps.schema_name = s.schemaname AND ps.sequence_name = s.sequencename
      WHERE s.schemaname NOT IN ${SYSTEM_SCHEMAS}
      ORDER BY 1, 2`,
  );
  return r.rows.map((row) => {
    const ascending = BigInt(row.increment_by) > 0n;
    const local = row.local_value === null ? null : { value: BigInt(row.local_value), isCalled: true };
    const reported =
      row.reported_value === null
        ? null
        : { value: BigInt(row.reported_value), isCalled: row.reported_is_called ?? true };
    const pos = furtherPosition(local, reported, ascending) ?? {
      value: BigInt(row.start_value),
      isCalled: false,
    };
    return { schema: row.schema, name: row.name, value: pos.value.toString(), isCalled: pos.isCalled };
  });
}
