/**
 * Acceptance (issue 2, item 6): with the server stopped, the slot's retained WAL grows past
 * maxRetainedWalBytes; the agent drops the slot and says so loudly; when the server is back a full
 * resync rebuilds the replica, equal to the primary.
 */
import type { Agent } from '../../agent/agent';
import type { BackupServer } from '../../backup-server/server';
import type { LogEntry } from '../../shared/log';
import { createDatabase, dropDatabase, query, sharedClusters, uniqueName, waitFor } from '../harness/db';
import { waitUntilEqual } from '../support/compare';
import {
  agentConfigFor,
  memoryLogger,
  serverConfigFor,
  startAgentInProcess,
  startServerInProcess,
  tempDir,
} from '../support/pgferry';

const { primary, backup } = sharedClusters();
const source = { name: 'walcap', password: 'pw-wal', database: uniqueName('src_wal') };
const replicaUrl = backup.url('pgferry_walcap');
let primaryUrl: string;
let server: BackupServer | null = null;
let agent: Agent;
let agentLog: LogEntry[];

afterAll(async () => {
  await agent?.stop();
  await server?.stop();
  await dropDatabase(primary, source.database);
  await dropDatabase(backup, 'pgferry_walcap');
});

it('drops the slot past maxRetainedWalBytes while the server is away, then resyncs in full', async () => {
  primaryUrl = await createDatabase(primary, source.database);
  await query(
    primaryUrl,
    'CREATE TABLE big (id int PRIMARY KEY, pad text); INSERT INTO big SELECT g, md5(g::text) FROM generate_series(1, 1000) g',
  );
  const serverRaw = await serverConfigFor(backup, [source], tempDir('wal'));
  server = await startServerInProcess(serverRaw, memoryLogger({ role: 'server' }).log);
  const mem = memoryLogger({ role: 'agent' });
  agentLog = mem.entries;
  agent = startAgentInProcess(
    agentConfigFor(primary, source, server.port, { maxRetainedWalBytes: '16MiB' }),
    mem.log,
  );
  await waitFor('streaming', () => agent.st.phase === 'streaming', 60_000);
  await waitUntilEqual(primaryUrl, replicaUrl, 10_000);

  await server.stop();
  server = null;
  await waitFor('the agent to notice', () => !agent.st.connected, 10_000);
  for (let i = 0; i < 4; i++) {
    await query(
      primaryUrl,
      `INSERT INTO big SELECT g, repeat(md5(g::text), 4) FROM generate_series(${2000 + i * 40000}, ${2000 + (i + 1) * 40000 - 1}) g`,
    );
  }
  await waitFor('the slot to be dropped', () => agent.st.slotDroppedAt !== null, 20_000);
  const slots = await query(
    primaryUrl,
    `SELECT 1 FROM pg_replication_slots WHERE slot_name = 'pgferry_walcap'`,
  );
  expect(slots).toEqual([]);
  const loud = agentLog.find((e) => e.level === 'error' && /DROPPING THE REPLICATION SLOT/.test(e.message));
  expect(loud).toBeDefined();
  expect(Number(loud?.retainedWalBytes)).toBeGreaterThan(16 * 1024 * 1024);

  server = await startServerInProcess(serverRaw, memoryLogger({ role: 'server' }).log);
  await waitFor(
    'a full resync',
    () =>
      agentLog.some(
        (e) => e.message === 'making a full initial copy' && /slot is missing/.test(String(e.reason)),
      ),
    30_000,
  );
  await waitUntilEqual(primaryUrl, replicaUrl, 30_000);
  const [{ n }] = await query<{ n: string }>(replicaUrl, 'SELECT count(*)::text AS n FROM big');
  expect(Number(n)).toBe(161000);
});
