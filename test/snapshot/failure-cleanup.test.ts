/**
 * A snapshot that fails while its copy connections are still starting: the other connections begin
 * copying while the first one reads the schema fingerprint (snapshot-writer.ts), so a failure there meets
 * connections in every state. The run must fail with a clear error, remove its partial folder and leave no
 * connection open on the replica.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SnapshotService } from '../../backup-server/snapshot/snapshot-service';
import { silentLogger } from '../../shared/log';
import { query, waitFor } from '../harness/db';
import { makeConfig, makeReplica, type TestReplica, tempDir } from './fixture';

describe('a snapshot failing as it starts', () => {
  const dir = tempDir('snaps');
  const stateDir = tempDir('state');
  const noTools = tempDir('no-pg-tools'); // snapshots.pgBinDir without pg_dump in it
  let replica: TestReplica;

  beforeAll(async () => {
    replica = await makeReplica('failing', { tables: 6, rows: 500 });
  });

  afterAll(async () => {
    await replica?.drop();
    for (const d of [dir, stateDir, noTools]) fs.rmSync(d, { recursive: true, force: true });
  });

  const snapshotBackends = async () =>
    (
      await query<{ n: number }>(
        replica.url,
        `SELECT count(*)::int AS n FROM pg_stat_activity
          WHERE application_name = 'pgferry-snapshot' AND datname = current_database()`,
      )
    )[0].n;

  it('fails with the missing pg_dump named, removes its partial folder and closes every connection', async () => {
    const service = new SnapshotService({
      config: makeConfig({
        dir,
        stateDir,
        sources: [{ name: 'failing', url: replica.url }],
        // three connections, the other two copying slowly when the first one fails
        snapshots: { parallelCopies: 3, pgBinDir: noTools, faultInjection: { tableCopyDelayMs: 200 } },
      }),
      logger: silentLogger(),
    });
    const { record } = await service.createSnapshot('failing');
    expect(record.status).toBe('failed');
    expect(record.errorCode).toBe('SNAPSHOT_FAILED');
    expect(record.error).toMatch(/no pg_dump for PostgreSQL 15 found/);

    expect(fs.readdirSync(path.join(dir, 'failing'))).toEqual([]);
    await waitFor('the snapshot connections to close', async () => (await snapshotBackends()) === 0, 5_000);
  });
});
