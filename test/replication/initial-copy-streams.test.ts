/**
 * The initial copy on two streams (protocol 2): a table split into page ranges copied by two agent
 * connections and applied by two server connections at once arrives complete and exact — the row alone
 * on its last page included, rows written during the copy left out (the copy is the slot's snapshot) —
 * with the post-data keys, indexes and foreign keys in place. A copy broken off midway leaves the
 * previous replica in place, and the next copy replaces it.
 */
import type { Client } from 'pg';
import { connectToServer, type AgentConn } from '../../agent/link';
import { type InitialCopyOptions, runInitialCopy } from '../../agent/initial-copy';
import { ensurePublication, primaryIdentity } from '../../agent/primary';
import type { BackupServer } from '../../backup-server/server';
import { agentConfigSchema, resolveAgentConfig } from '../../shared/config/agent-config';
import { parseConfig } from '../../shared/config/load';
import type { LogEntry } from '../../shared/log';
import { COPY_STREAMS_VERSION } from '../../shared/protocol/messages';
import {
  createDatabase,
  dropDatabase,
  query,
  sharedClusters,
  tableHash,
  uniqueName,
  waitFor,
  withClient,
} from '../harness/db';
import {
  agentConfigFor,
  memoryLogger,
  serverConfigFor,
  startServerInProcess,
  tempDir,
} from '../support/pgferry';

const { primary, backup } = sharedClusters();
const source = { name: 'streams', password: 'pw-streams', database: uniqueName('src_streams') };
const replicaDb = 'pgferry_streams';
const replicaUrl = backup.url(replicaDb);
let primaryUrl: string;
let server: BackupServer;
let serverLog: LogEntry[];
let agentCfg: ReturnType<typeof resolveAgentConfig>;
let copyOptions: InitialCopyOptions;
const agent = memoryLogger({ role: 'agent' });

beforeAll(async () => {
  primaryUrl = await createDatabase(primary, source.database);
  await withClient(primaryUrl, async (c) => {
    await c.query(`
      CREATE TABLE big (id int PRIMARY KEY, grp int NOT NULL, gone text, note text,
                        twice int GENERATED ALWAYS AS (id * 2) STORED);
      ALTER TABLE big DROP COLUMN gone;
      ALTER TABLE big ALTER COLUMN note SET STORAGE PLAIN;
      INSERT INTO big (id, grp, note) SELECT g, g % 100, md5(g::text) FROM generate_series(1, 150000) g;
      -- too wide to share a page: alone on the table's last page
      INSERT INTO big (id, grp, note) SELECT 150001, 1, string_agg(md5(g::text), '') FROM generate_series(1, 220) g;
      CREATE INDEX big_grp ON big (grp);
      CREATE TABLE child (id int PRIMARY KEY, big_id int REFERENCES big, label text UNIQUE);
      INSERT INTO child SELECT g, g * 3, 'c' || g FROM generate_series(1, 5000) g;
    `);
    await ensurePublication(c, 'pgferry', agent.log);
  });
  const s = memoryLogger({ role: 'server' });
  serverLog = s.entries;
  server = await startServerInProcess(await serverConfigFor(backup, [source], tempDir('streams')), s.log);
  agentCfg = resolveAgentConfig(parseConfig(agentConfigSchema, agentConfigFor(primary, source, server.port)));
  const ident = await withClient(primaryUrl, (c) => primaryIdentity(c as Client));
  copyOptions = {
    url: primaryUrl,
    slot: 'pgferry_streams',
    publication: 'pgferry',
    systemIdentifier: ident.systemIdentifier,
    pgMajor: ident.pgMajor,
    chunkBytes: 16 * 1024,
    streams: 2,
    splitTableMinBytes: 1024 * 1024, // big (about 5 MB) is split, child (0.3 MB) is not
  };
});

afterAll(async () => {
  await server?.stop();
  await dropDatabase(primary, source.database);
  await dropDatabase(backup, replicaDb);
});

/** Logs in as the agent does and asks for a copy; resolves with the link once the server welcomed it. */
async function session(): Promise<{ conn: AgentConn; applied: Promise<string> }> {
  const conn = await connectToServer(agentCfg);
  await conn.send({
    tag: 'start',
    systemIdentifier: copyOptions.systemIdentifier,
    pgMajor: copyOptions.pgMajor,
    appVersion: null,
    slot: { exists: false, confirmedFlushLsn: null },
  });
  const welcome = (await conn.next(30_000)).header;
  expect(welcome.tag).toBe('welcome');
  const applied = new Promise<string>((resolve) => {
    conn.onFrames((f) => {
      if (f.header.tag === 'ack') resolve(f.header.lsn);
    });
  });
  return { conn, applied };
}

const pages = async (url: string) =>
  Number((await query<{ p: string }>(url, `SELECT pg_relation_size('big') / 8192 AS p`))[0].p);

it('copies a table split over two streams complete and exact, while the primary writes to it', async () => {
  const before = { big: await tableHash(primaryUrl, 'big'), child: await tableHash(primaryUrl, 'child') };
  const lastPage = await query(
    primaryUrl,
    `SELECT id FROM big WHERE (ctid::text::point)[0] = (SELECT max((ctid::text::point)[0]) FROM big)`,
  );
  expect(lastPage).toEqual([{ id: 150001 }]);
  const pagesBefore = await pages(primaryUrl);

  // once the copy's snapshot is taken, the table grows and changes: none of that is in the copy. (Not as
  // soon as the slot shows in pg_replication_slots: until the slot reaches a consistent point it waits
  // for the transactions already running, and a writer's commits in that window are rightly in the copy.)
  let copying = true;
  let writtenDuringCopy = 0;
  const logFrom = serverLog.length;
  const writer = withClient(primaryUrl, async (c) => {
    await waitFor(
      'the copy to start on the server (after the slot and its snapshot exist)',
      async () => serverLog.slice(logFrom).some((e) => e.message === 'initial copy started'),
      30_000,
      10,
    );
    for (let n = 0; copying && n < 400; n++) {
      await c.query(
        `INSERT INTO big (id, grp, note) SELECT g, 7, md5(g::text) FROM generate_series($1::int, $1::int + 499) g`,
        [1_000_000 + n * 500],
      );
      await c.query('UPDATE big SET note = $1 WHERE id = $2', ['changed', n + 1]);
      await c.query('DELETE FROM child WHERE id = $1', [n + 1]);
      if (copying) writtenDuringCopy++;
    }
  });

  const { conn, applied } = await session();
  expect(conn.protocolVersion).toBeGreaterThanOrEqual(COPY_STREAMS_VERSION);
  const r = await runInitialCopy(conn, copyOptions, agent.log);
  await applied;
  copying = false;
  await writer;
  expect(writtenDuringCopy).toBeGreaterThan(0);
  conn.destroy();

  expect(await pages(primaryUrl)).toBeGreaterThan(pagesBefore);
  expect(await tableHash(replicaUrl, 'big')).toEqual(before.big);
  expect(await tableHash(replicaUrl, 'child')).toEqual(before.child);
  expect(r.tables).toBe(2);
  const done = serverLog.find((e) => e.message === 'initial copy complete');
  // child came whole (loaded with COPY FREEZE), big in two parts
  expect(done).toMatchObject({ streams: 2, tables: 2, frozenTables: 1 });

  // post-data: keys, indexes and the foreign key all there
  const schema = `SELECT conname, contype FROM pg_constraint WHERE conrelid IN ('big'::regclass, 'child'::regclass)
                  UNION ALL SELECT indexname, 'i' FROM pg_indexes WHERE tablename IN ('big', 'child') ORDER BY 1, 2`;
  expect(await query(replicaUrl, schema)).toEqual(await query(primaryUrl, schema));
});

it('keeps the previous replica when a copy breaks off, and replaces it with the next complete one', async () => {
  const old = await tableHash(replicaUrl, 'big');
  await query(primaryUrl, 'UPDATE big SET grp = grp + 1 WHERE id <= 1000');
  // a copy that starts, sends part of a split table on stream 1, and loses its link
  const { conn } = await session();
  const started = serverLog.length;
  await conn.send({
    tag: 'syncBegin',
    syncId: 'broken',
    systemIdentifier: copyOptions.systemIdentifier,
    consistentLsn: '0/1',
    schemaPre: 'CREATE TABLE public.big (id int, grp int, note text)',
  });
  await conn.send({
    tag: 'syncTable',
    table: { schema: 'public', name: 'big' },
    format: 'binary',
    stream: 1,
    parts: 2,
  });
  const signature = Buffer.from('PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0', 'latin1');
  await conn.send({ tag: 'copyData', stream: 1 }, signature);
  await waitFor('the broken copy to start', () =>
    serverLog.slice(started).some((e) => e.message === 'initial copy started'),
  );
  conn.destroy();
  await waitFor('the server to drop the link', () => !server.sourceStatus()[0].connected);
  expect(await tableHash(replicaUrl, 'big')).toEqual(old);

  const want = await tableHash(primaryUrl, 'big');
  expect(want).not.toEqual(old);
  const again = await session();
  await runInitialCopy(again.conn, copyOptions, agent.log);
  await again.applied;
  again.conn.destroy();
  expect(await tableHash(replicaUrl, 'big')).toEqual(want);
});
