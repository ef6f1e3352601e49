/**
 * pgferry's own metadata inside each replica database (schema `pgferry`), as numbered migrations.
 * The applied LSN is written in the same transaction as the changes it covers.
 */
import type { ClientBase } from 'pg';

export const METADATA_SCHEMA = 'pgferry';

const MIGRATIONS: string[] = [
  `CREATE SCHEMA IF NOT EXISTS pgferry;
   CREATE TABLE pgferry.migrations (version int PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now());
   CREATE TABLE pgferry.state (
     id int PRIMARY KEY DEFAULT 1 CHECK (id = 1),
     source text NOT NULL,
     system_identifier text NOT NULL,
     sync_id text NOT NULL,
     sync_completed_at timestamptz,
     applied_lsn pg_lsn NOT NULL,
     applied_at timestamptz NOT NULL DEFAULT now(),
     last_commit_time timestamptz,
     app_version text,
     schema_hash text
   );
   CREATE TABLE pgferry.table_changes (
     schema_name text NOT NULL,
     table_name text NOT NULL,
     last_change_lsn pg_lsn NOT NULL,
     PRIMARY KEY (schema_name, table_name)
   );
   CREATE TABLE pgferry.sequences (
     schema_name text NOT NULL,
     sequence_name text NOT NULL,
     last_value bigint NOT NULL,
     is_called boolean NOT NULL,
     reported_lsn pg_lsn,
     reported_at timestamptz NOT NULL DEFAULT now(),
     PRIMARY KEY (schema_name, sequence_name)
   );`,
  `ALTER TABLE pgferry.state
     ADD COLUMN paused_at timestamptz,
     ADD COLUMN paused_error text,
     ADD COLUMN resync_requested_at timestamptz;`,
];

export const METADATA_VERSION = MIGRATIONS.length;

/** Brings the metadata schema up to date; safe to run at every start and concurrently. */
export async function migrateMetadata(client: ClientBase): Promise<void> {
  await client.query('BEGIN');
  try {
    await client.query(`SELECT pg_advisory_xact_lock(hashtext('pgferry.migrate'))`);
    const exists = await client.query(`SELECT 1 FROM pg_namespace WHERE nspname = 'pgferry'`);
    let current = 0;
    if (exists.rowCount) {
      const r = await client.query<{ v: number | null }>('SELECT max(version) AS v FROM pgferry.migrations');
      current = r.rows[0].v ?? 0;
    }
    for (let v = current + 1; v <= MIGRATIONS.length; v++) {
      await client.query(MIGRATIONS[v - 1]);
      await client.query('INSERT INTO pgferry.migrations (version) VALUES ($1)', [v]);
    }
    await client.query('COMMIT');
  } catch (e) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw e;
  }
}

export interface ReplicaState {
  source: string;
  systemIdentifier: string;
  syncId: string;
  syncCompletedAt: Date | null;
  appliedLsn: string;
  appliedAt: Date;
  lastCommitTime: Date | null;
  appVersion: string | null;
  schemaHash: string | null;
  pausedAt: Date | null;
  pausedError: string | null;
  resyncRequestedAt: Date | null;
}

export async function readReplicaState(client: ClientBase): Promise<ReplicaState | null> {
  const ns = await client.query(`SELECT 1 FROM pg_namespace WHERE nspname = 'pgferry'`);
  if (!ns.rowCount) return null;
  const r = await client.query(
    `SELECT source, system_identifier, sync_id, sync_completed_at, applied_lsn::text AS applied_lsn, applied_at,
            last_commit_time, app_version, schema_hash,
            ${(await hasColumn(client, 'paused_at')) ? 'paused_at, paused_error, resync_requested_at' : 'NULL AS paused_at, NULL AS paused_error, NULL AS resync_requested_at'}
       FROM pgferry.state WHERE id = 1`,
  );
  if (!r.rowCount) return null;
  const row = r.rows[0];
  return {
    source: row.source,
    systemIdentifier: row.system_identifier,
    syncId: row.sync_id,
    syncCompletedAt: row.sync_completed_at,
    appliedLsn: row.applied_lsn,
    appliedAt: row.applied_at,
    lastCommitTime: row.last_commit_time,
    appVersion: row.app_version,
    schemaHash: row.schema_hash,
    pausedAt: row.paused_at,
    pausedError: row.paused_error,
    resyncRequestedAt: row.resync_requested_at,
  };
}

async function hasColumn(client: ClientBase, column: string): Promise<boolean> {
  const r = await client.query(
    `SELECT 1 FROM pg_attribute WHERE attrelid = 'pgferry.state'::regclass AND attname = $1 AND NOT attisdropped`,
    [column],
  );
  return (r.rowCount ?? 0) > 0;
}

/** Marks the source paused (an unappliable change), in its own transaction. */
export async function setPaused(client: ClientBase, error: string): Promise<void> {
  await migrateMetadata(client);
  await client.query('UPDATE pgferry.state SET paused_at = now(), paused_error = $1 WHERE id = 1', [error]);
}

/** Asks for a deliberate full resync at the agent's next connection. */
export async function requestResync(client: ClientBase): Promise<boolean> {
  await migrateMetadata(client);
  const r = await client.query('UPDATE pgferry.state SET resync_requested_at = now() WHERE id = 1');
  return (r.rowCount ?? 0) > 0;
}
