/**
 * Rows 2 and 3 share one setup: two equal source databases on the primary (`pgbench -i -s <scale>` plus the
 * marker table and the bulk table), one replicated by a native subscription and one by pgferry. Both
 * replicators stay connected for the whole time, so each also pays for skipping the other's WAL, and their
 * runs can be interleaved.
 */
import type { Cluster } from '../harness/cluster';
import {
  checkpoint,
  copySchema,
  dropDatabase,
  dropInactiveSlots,
  freshDatabase,
  nativeSubscriptionGate,
  nativeSyncDone,
  pgbenchInit,
  sql,
  value,
} from './bench-env';
import { backends, type Stage } from './cpu-usage';
import { MARKER_DDL, MARKER_REPLICA_DDL, roundtrip } from './markers';
import type { PgferryRig } from './pgferry-rig';

export const STREAM_SOURCE = 'stream';
export const PGFERRY_STREAM_DB = 'stream_pgferry';
const NATIVE_SRC_DB = 'stream_native';
const NATIVE_REPLICA_DB = 'native_stream';

export const BULK_DDL = 'CREATE TABLE bulk_t (id bigint PRIMARY KEY, a int, b text, c timestamptz)';
const BULK_REPLICA_DDL = 'ALTER TABLE bulk_t ADD COLUMN applied_at timestamptz DEFAULT clock_timestamp()';

/** the native subscription of the streaming and bulk rows */
export const NATIVE_SUBSCRIPTION = 'native_stream';

export interface Replicator {
  name: 'pgferry' | 'native';
  primaryDb: string;
  primaryUrl: string;
  replicaUrl: string;
  /** application_name of its walsender on the primary */
  walsenderApp: string;
  /** the processes of its pipeline, for CPU accounting */
  stages: () => Promise<Stage[]>;
}

export async function prepareStreamSources(primary: Cluster, scale: number): Promise<void> {
  const url = await freshDatabase(primary, PGFERRY_STREAM_DB);
  await pgbenchInit(primary, PGFERRY_STREAM_DB, scale);
  await sql(url, MARKER_DDL);
  await sql(url, BULK_DDL);
  await sql(url, 'VACUUM ANALYZE');
  // the native side's source: the same files (faster than a second pgbench -i)
  await dropDatabase(primary, NATIVE_SRC_DB);
  await sql(
    primary.url(),
    `CREATE DATABASE ${NATIVE_SRC_DB} TEMPLATE ${PGFERRY_STREAM_DB} STRATEGY FILE_COPY`,
  );
  await sql(primary.url(NATIVE_SRC_DB), 'CREATE PUBLICATION bench_pub FOR ALL TABLES');
  await checkpoint(primary);
}

async function startNative(primary: Cluster, replica: Cluster): Promise<Replicator> {
  const url = await freshDatabase(replica, NATIVE_REPLICA_DB);
  await copySchema(primary, NATIVE_SRC_DB, replica, NATIVE_REPLICA_DB);
  await sql(url, MARKER_REPLICA_DDL);
  await sql(url, BULK_REPLICA_DDL);
  await nativeSubscriptionGate.wait();
  await sql(
    url,
    `CREATE SUBSCRIPTION ${NATIVE_SUBSCRIPTION} CONNECTION 'host=127.0.0.1 port=${primary.port} dbname=${NATIVE_SRC_DB} user=postgres' PUBLICATION bench_pub`,
  );
  await nativeSyncDone(url, NATIVE_SUBSCRIPTION, 600_000);
  return {
    name: 'native',
    primaryDb: NATIVE_SRC_DB,
    primaryUrl: primary.url(NATIVE_SRC_DB),
    replicaUrl: url,
    walsenderApp: NATIVE_SUBSCRIPTION,
    stages: async () => [
      ...(await backends(
        primary,
        'walsender',
        `backend_type = 'walsender' AND application_name = '${NATIVE_SUBSCRIPTION}'`,
      )),
      ...(await backends(
        replica,
        'apply worker',
        `backend_type = 'logical replication worker' AND datname = '${NATIVE_REPLICA_DB}'`,
      )),
    ],
  };
}

async function startPgferry(primary: Cluster, replica: Cluster, rig: PgferryRig): Promise<Replicator> {
  for (const suffix of ['', '__sync', '__old'])
    await dropDatabase(replica, `pgferry_${STREAM_SOURCE}${suffix}`);
  await dropInactiveSlots(primary, PGFERRY_STREAM_DB);
  rig.startAgent(STREAM_SOURCE);
  await rig.initialCopyApplied(STREAM_SOURCE, 600_000);
  // pgferry's initial copy made the replica's tables; the lag columns are added afterwards (inserts name
  // their columns, so the default fills)
  const url = rig.replicaUrl(STREAM_SOURCE);
  await sql(url, MARKER_REPLICA_DDL);
  await sql(url, BULK_REPLICA_DDL);
  return {
    name: 'pgferry',
    primaryDb: PGFERRY_STREAM_DB,
    primaryUrl: primary.url(PGFERRY_STREAM_DB),
    replicaUrl: url,
    walsenderApp: 'pgferry-agent-stream',
    stages: async () => [
      ...(await backends(
        primary,
        'walsender',
        `backend_type = 'walsender' AND application_name = 'pgferry-agent-stream'`,
      )),
      { label: 'agent', pid: rig.pid('agent', STREAM_SOURCE) },
      { label: 'server', pid: rig.pid('server') },
      ...(await backends(
        replica,
        'replica backend',
        `datname = 'pgferry_${STREAM_SOURCE}' AND application_name LIKE 'pgferry%'`,
      )),
    ],
  };
}

export async function startReplicators(
  primary: Cluster,
  replica: Cluster,
  rig: PgferryRig,
): Promise<Replicator[]> {
  const reps = [await startNative(primary, replica), await startPgferry(primary, replica, rig)];
  for (const r of reps) await roundtrip(r.primaryUrl, r.replicaUrl);
  return reps;
}

export async function stopReplicators(primary: Cluster, replica: Cluster, rig: PgferryRig): Promise<void> {
  await sql(replica.url(NATIVE_REPLICA_DB), `DROP SUBSCRIPTION IF EXISTS ${NATIVE_SUBSCRIPTION}`).catch(
    () => undefined,
  );
  await rig.stopAgent(STREAM_SOURCE);
  await dropInactiveSlots(primary, PGFERRY_STREAM_DB);
  await dropDatabase(replica, NATIVE_REPLICA_DB);
  await dropDatabase(replica, `pgferry_${STREAM_SOURCE}`);
  await dropDatabase(primary, NATIVE_SRC_DB);
  await dropDatabase(primary, PGFERRY_STREAM_DB);
}

/** Balances and history of the pgbench tables, equal on both sides once the replica caught up. */
export async function consistent(r: Replicator): Promise<void> {
  const q = `SELECT (SELECT sum(abalance) FROM pgbench_accounts) || ' ' || (SELECT sum(tbalance) FROM pgbench_tellers)
    || ' ' || (SELECT sum(bbalance) FROM pgbench_branches) || ' ' || (SELECT count(*) FROM pgbench_history)`;
  const [a, b] = [await value(r.primaryUrl, q), await value(r.replicaUrl, q)];
  if (a !== b) throw new Error(`${r.name}: the replica differs from the primary: primary ${a}, replica ${b}`);
}
