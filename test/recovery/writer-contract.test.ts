/**
 * The contract between the backup server's snapshot writer and recovery: a snapshot written by
 * backup-server/snapshot from a replica-shaped database (pgferry metadata, tables split into page ranges,
 * multi-member gzip), served by the FTP server, restores with identical contents. (Acceptance 1 end to end,
 * with replication feeding the replica, belongs to the replication tests.)
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { SnapshotFtpServer } from '../../backup-server/ftp';
import { migrateMetadata } from '../../backup-server/replica/metadata';
import { writeSnapshot } from '../../backup-server/snapshot/snapshot-writer';
import { recover } from '../../agent/recovery/recovery';
import { silentLogger } from '../../shared/log';
import {
  createDatabase,
  dropDatabase,
  query,
  sharedClusters,
  tableHash,
  uniqueName,
  userTables,
  withClient,
} from '../harness/db';
import { APP_SCHEMA_SQL, appDataSql } from './fixtures';
import { ftpSource, startFtp } from './ftp-harness';

const { primary, backup } = sharedClusters();
const replicaDb = uniqueName('contract_replica');
const targetDb = uniqueName('contract_dst');
let dir: string;
let server: SnapshotFtpServer | undefined;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgferry-contract-'));
});

afterAll(async () => {
  await server?.stop();
  await dropDatabase(backup, replicaDb);
  await dropDatabase(primary, targetDb);
  fs.rmSync(dir, { recursive: true, force: true });
});

test('a snapshot written by the backup server restores through its FTP server with identical contents', async () => {
  const replica = await createDatabase(backup, replicaDb);
  await withClient(replica, async (c) => {
    await migrateMetadata(c);
    await c.query(
      `INSERT INTO pgferry.state (source, system_identifier, sync_id, applied_lsn, app_version, schema_hash)
       VALUES ('monitoring', '7311111111111111111', 'sync-1', '0/1000000', '5.2.1', 'schema-1')`,
    );
    await c.query(`${APP_SCHEMA_SQL} ${appDataSql(3000)}`);
  });
  const written = await writeSnapshot({
    source: 'monitoring',
    replicaUrl: replica,
    dir,
    compressionLevel: 1,
    parallelCopies: 2,
    splitTableMinBytes: 0,
    previous: null,
    sequenceRefreshTimeoutMs: 1000,
    logger: silentLogger(),
  });
  server = await startFtp(dir);
  const target = primary.url(targetDb);
  const work = path.join(dir, '..', `${path.basename(dir)}-work`);
  const src = ftpSource(server);
  try {
    const r = await recover({ src, latest: true, target, force: false, workDir: work, appVersion: '5.2.1' });
    expect(r.snapshot.id).toBe(written.info.manifest.id);
  } finally {
    await src.close();
    fs.rmSync(work, { recursive: true, force: true });
  }
  const tables = await userTables(replica);
  // the replica's own metadata schema is not part of the restored system
  expect(await query(target, `SELECT 1 FROM pg_namespace WHERE nspname = 'pgferry'`)).toEqual([]);
  expect(await userTables(target)).toEqual(tables);
  for (const t of tables)
    expect({ t, ...(await tableHash(target, t)) }).toEqual({ t, ...(await tableHash(replica, t)) });
  const id = await query<{ id: number }>(
    target,
    `INSERT INTO app.customers (name) VALUES ('new') RETURNING id`,
  );
  expect(id[0].id).toBeGreaterThan(3000);
});
