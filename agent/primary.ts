/**
 * What the agent asks of the primary over ordinary connections: identity, the publication, replica
 * identities (so the primary's UPDATE/DELETE never fail), the slot and its retained WAL, sequences.
 */
import { Client, type ClientConfig } from 'pg';
import { PgferryError } from '../shared/errors';
import type { Logger } from '../shared/log';
import type { SequenceValue } from '../shared/protocol/messages';
import { readBufferSocket } from '../shared/pg-read-buffer';
import { TEXT_SESSION_OPTIONS } from '../shared/pg-text';

export function primaryClientConfig(url: string, appName: string): ClientConfig {
  return { connectionString: url, options: TEXT_SESSION_OPTIONS, application_name: appName };
}

/** `copyReader`: the connection reads COPY output with CopyOut (see shared/pg-read-buffer.ts) */
export async function connectPrimary(
  url: string,
  appName = 'pgferry-agent',
  opts: { copyReader?: boolean } = {},
): Promise<Client> {
  const c = new Client({
    ...primaryClientConfig(url, appName),
    ...(opts.copyReader ? { stream: readBufferSocket } : {}),
  });
  try {
    await c.connect();
  } catch (e) {
    throw new PgferryError('PRIMARY_UNAVAILABLE', `cannot connect to the primary: ${(e as Error).message}`, {
      cause: e,
    });
  }
  c.on('error', () => undefined);
  return c;
}

export interface PrimaryIdentity {
  systemIdentifier: string;
  pgMajor: number;
  database: string;
}

export async function primaryIdentity(c: Client): Promise<PrimaryIdentity> {
  const r = await c.query<{ sid: string; v: string; db: string }>(
    `SELECT system_identifier::text AS sid, current_setting('server_version_num') AS v, current_database() AS db
       FROM pg_control_system()`,
  );
  return {
    systemIdentifier: r.rows[0].sid,
    pgMajor: Math.floor(Number(r.rows[0].v) / 10000),
    database: r.rows[0].db,
  };
}

/**
 * Tables that would make UPDATE/DELETE fail once published (no primary key and identity default, or
 * identity nothing) get REPLICA IDENTITY FULL. Returns the tables changed.
 */
export async function ensureReplicaIdentities(c: Client, log: Logger): Promise<string[]> {
  const r = await c.query<{ t: string }>(
    `SELECT format('%I.%I', n.nspname, c.relname) AS t
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind = 'r'
        AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgferry') AND n.nspname NOT LIKE 'pg\\_%'
        AND (c.relreplident = 'n'
             OR (c.relreplident = 'd' AND NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary)))`,
  );
  for (const { t } of r.rows) {
    await c.query(`ALTER TABLE ${t} REPLICA IDENTITY FULL`);
    log.warn(
      'table has no primary key: set REPLICA IDENTITY FULL so its updates and deletes keep working and replicate',
      { table: t },
    );
  }
  return r.rows.map((x) => x.t);
}

export async function ensurePublication(c: Client, publication: string, log: Logger): Promise<void> {
  const r = await c.query<{ puballtables: boolean }>(
    'SELECT puballtables FROM pg_publication WHERE pubname = $1',
    [publication],
  );
  if (r.rowCount === 0) {
    await c.query(`CREATE PUBLICATION "${publication}" FOR ALL TABLES`);
    log.info('created publication for all tables', { publication });
  } else if (!r.rows[0].puballtables) {
    throw new PgferryError(
      'CONFIG_INVALID',
      `publication "${publication}" exists but does not cover all tables`,
      {
        hint: `drop it (DROP PUBLICATION "${publication}") so pgferry can create it, or choose another source.publication name`,
      },
    );
  }
}

export interface SlotInfo {
  exists: boolean;
  active: boolean;
  activePid: number | null;
  confirmedFlushLsn: string | null;
  retainedWalBytes: number | null;
  walStatus: string | null;
  currentWalLsn: string;
}

export async function slotInfo(c: Client, slot: string): Promise<SlotInfo> {
  const r = await c.query(
    `SELECT s.active, s.active_pid, s.confirmed_flush_lsn::text AS confirmed, s.wal_status,
            pg_wal_lsn_diff(pg_current_wal_lsn(), s.restart_lsn)::float8 AS retained, pg_current_wal_lsn()::text AS cur
       FROM (SELECT 1) one LEFT JOIN pg_replication_slots s ON s.slot_name = $1`,
    [slot],
  );
  const row = r.rows[0];
  return {
    exists: row.active !== null,
    active: row.active === true,
    activePid: row.active_pid,
    confirmedFlushLsn: row.confirmed,
    retainedWalBytes: row.retained === null ? null : Number(row.retained),
    walStatus: row.wal_status,
    currentWalLsn: row.cur,
  };
}

export async function dropSlot(c: Client, slot: string): Promise<void> {
  await c.query(
    `SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NOT NULL`,
    [slot],
  );
  for (let i = 0; i < 50; i++) {
    try {
      await c.query(
        'SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1',
        [slot],
      );
      return;
    } catch (e) {
      if (!/is active/.test((e as Error).message)) throw e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

export async function readSequences(c: Client): Promise<SequenceValue[]> {
  const r = await c.query<{
    schemaname: string;
    sequencename: string;
    last_value: string | null;
    start_value: string;
  }>(
    `SELECT schemaname, sequencename, last_value::text, start_value::text FROM pg_sequences
      WHERE schemaname NOT IN ('pgferry')`,
  );
  return r.rows.map((s) => ({
    schema: s.schemaname,
    name: s.sequencename,
    lastValue: s.last_value ?? s.start_value,
    isCalled: s.last_value !== null,
  }));
}

export async function readAppVersion(
  c: Client,
  cfg: { appVersion?: string; appVersionQuery?: string },
  log: Logger,
): Promise<string | null> {
  if (cfg.appVersion !== undefined) return cfg.appVersion;
  if (!cfg.appVersionQuery) return null;
  try {
    const r = await c.query({ text: cfg.appVersionQuery, rowMode: 'array' });
    const v = r.rows[0]?.[0];
    return v === undefined || v === null ? null : String(v);
  } catch (e) {
    log.warn('source.appVersionQuery failed; snapshots will record no application version', {
      error: (e as Error).message,
    });
    return null;
  }
}
