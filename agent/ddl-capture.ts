/**
 * DDL capture on the primary. Logical replication carries no DDL, so an event trigger records each DDL
 * command (its text and search_path) into pgferry.ddl_log inside the DDL's own transaction. That table is
 * published like any other, so the record travels in the change stream at exactly the DDL's position and
 * the backup server replays it there (before the first row that needs it).
 *
 * Needs a superuser; without one the agent runs degraded (schema hashes compared periodically).
 */
import type { Client } from 'pg';
import { SCHEMA_HASH_SQL } from '../shared/schema-hash';
import type { Logger } from '../shared/log';

export const DDL_LOG_SCHEMA = 'pgferry';
export const DDL_LOG_TABLE = 'ddl_log';

const INSTALL = `
CREATE SCHEMA IF NOT EXISTS pgferry;
CREATE TABLE IF NOT EXISTS pgferry.ddl_log (
  id bigserial PRIMARY KEY,
  txid bigint NOT NULL DEFAULT txid_current(),
  command text NOT NULL,
  search_path text NOT NULL,
  at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS ddl_log_txid ON pgferry.ddl_log (txid);
CREATE OR REPLACE FUNCTION pgferry.capture_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $fn$
DECLARE
  q text := current_query();
BEGIN
  -- pgferry's own objects are not replicated
  -- (DROP reports no commands here: it is always recorded)
  IF EXISTS (SELECT 1 FROM pg_event_trigger_ddl_commands())
     AND NOT EXISTS (SELECT 1 FROM pg_event_trigger_ddl_commands() c WHERE c.schema_name IS DISTINCT FROM 'pgferry') THEN
    RETURN;
  END IF;
  -- one record per statement text and transaction (a multi-command statement fires once per command)
  IF EXISTS (SELECT 1 FROM pgferry.ddl_log WHERE txid = txid_current() AND command = q) THEN
    RETURN;
  END IF;
  INSERT INTO pgferry.ddl_log (command, search_path) VALUES (q, current_setting('search_path'));
END
$fn$;
DO $do$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_event_trigger WHERE evtname = 'pgferry_ddl') THEN
    CREATE EVENT TRIGGER pgferry_ddl ON ddl_command_end EXECUTE FUNCTION pgferry.capture_ddl();
  END IF;
END
$do$;
`;

export type DdlMode = 'capture' | 'degraded';

/** Installs the capture (idempotent). Returns 'degraded' when the role may not create event triggers. */
export async function installDdlCapture(c: Client, log: Logger): Promise<DdlMode> {
  const r = await c.query<{ su: boolean }>(
    'SELECT rolsuper AS su FROM pg_roles WHERE rolname = current_user',
  );
  if (!r.rows[0]?.su) {
    log.warn(
      'DDL capture is off: the agent role is not a superuser, so schema changes are not replayed; running in degraded mode (schema hashes compared periodically, drift reported in status)',
    );
    return 'degraded';
  }
  await c.query(INSTALL);
  return 'capture';
}

/** Deletes capture records older than a day (they were replicated long ago). */
export async function pruneDdlLog(c: Client): Promise<void> {
  await c.query(`DELETE FROM pgferry.ddl_log WHERE at < now() - interval '1 day'`);
}

/** pg_dump of the primary includes the event trigger, whose function is not copied: remove it from the script. */
export function withoutCaptureTrigger(script: string): string {
  return script
    .replace(/^CREATE EVENT TRIGGER pgferry_ddl [^;]*;$/gm, '')
    .replace(/^ALTER EVENT TRIGGER pgferry_ddl [^;]*;$/gm, '');
}

export async function schemaHash(c: Client): Promise<string> {
  const r = await c.query<{ hash: string }>(SCHEMA_HASH_SQL);
  return r.rows[0].hash;
}
