/**
 * How much room the next snapshot of a source needs, estimated before anything is written: the bytes the
 * previous snapshot spent on the tables changed since (those are rewritten; the others are hard links),
 * or the previous snapshot's whole size when linking will not be possible or the replica cannot be asked.
 */
import { Client } from 'pg';
import { compareLsn, parseLsn } from '../../shared/lsn';
import { readReplicaState } from '../replica/metadata';
import type { SnapshotInfo } from './catalog';

export interface SpaceEstimate {
  bytes: number;
  basis: string;
}

export async function estimateSnapshotBytes(
  previous: SnapshotInfo | null,
  replicaUrl: string,
): Promise<SpaceEstimate> {
  if (!previous) return { bytes: 0, basis: 'no previous snapshot to estimate from' };
  const m = previous.manifest;
  const whole = { bytes: m.totalBytes, basis: `the size of the previous snapshot ${m.id}` };
  const client = new Client({ connectionString: replicaUrl, application_name: 'pgferry-snapshot' });
  client.on('error', () => undefined);
  try {
    await client.connect();
    const state = await readReplicaState(client);
    if (!state || state.syncId !== m.syncId || state.systemIdentifier !== m.systemIdentifier) return whole;
    const r = await client.query<{ schema_name: string; table_name: string; lsn: string }>(
      'SELECT schema_name, table_name, last_change_lsn::text AS lsn FROM pgferry.table_changes',
    );
    const changed = new Map(r.rows.map((row) => [`${row.schema_name}\u0000${row.table_name}`, row.lsn]));
    const prevLsn = parseLsn(m.lsn);
    let bytes = m.schema.pre.bytes + m.schema.post.bytes;
    let tables = 0;
    for (const t of m.tables) {
      const lsn = changed.get(`${t.schema}\u0000${t.name}`);
      if (lsn === undefined || compareLsn(parseLsn(lsn), prevLsn) > 0) {
        bytes += t.bytes;
        tables++;
      }
    }
    return {
      bytes,
      basis: `${tables} of ${m.tables.length} tables changed since the previous snapshot ${m.id}`,
    };
  } catch {
    return whole;
  } finally {
    await client.end().catch(() => undefined);
  }
}
