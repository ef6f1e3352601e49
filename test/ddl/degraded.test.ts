/**
 * Acceptance (issue 7, item 5): when the agent's role may not create event triggers (no superuser), it runs
 * degraded: DDL is not replayed, the schema hashes are compared periodically, and drift is reported within
 * one check period.
 */
import type { Agent } from '../../agent/agent';
import type { BackupServer } from '../../backup-server/server';
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
const source = { name: 'degraded', password: 'pw-d', database: uniqueName('src_degraded') };
const role = uniqueName('agent_role');
let server: BackupServer;
let agent: Agent;

afterAll(async () => {
  await agent?.stop();
  await server?.stop();
  await dropDatabase(primary, source.database);
  await dropDatabase(backup, 'pgferry_degraded');
  await query(primary.url(), `DROP ROLE IF EXISTS ${role}`);
});

it('reports a schema drift within one check period when it cannot capture DDL', async () => {
  const url = await createDatabase(primary, source.database);
  // what an operator prepares for a non-superuser agent: the publication, read access, replication rights
  await query(
    url,
    `CREATE TABLE items (id int PRIMARY KEY, v text); INSERT INTO items SELECT g, 'v' FROM generate_series(1, 50) g;
     CREATE PUBLICATION pgferry FOR ALL TABLES;
     CREATE ROLE ${role} LOGIN REPLICATION IN ROLE pg_monitor;
     GRANT SELECT ON ALL TABLES IN SCHEMA public TO ${role};
     GRANT EXECUTE ON FUNCTION pg_control_system() TO ${role};`,
  );
  server = await startServerInProcess(
    await serverConfigFor(backup, [source], tempDir('degraded')),
    memoryLogger({ role: 'server' }).log,
  );
  const cfg = agentConfigFor(primary, source, server.port, { schemaCheck: { intervalSeconds: 2 } });
  (cfg.source as { url: string }).url = `postgres://${role}@127.0.0.1:${primary.port}/${source.database}`;
  const mem = memoryLogger({ role: 'agent' });
  agent = startAgentInProcess(cfg, mem.log);
  await waitFor('streaming', () => agent.st.phase === 'streaming', 60_000);
  expect(agent.st.ddlMode).toBe('degraded');
  expect(mem.entries.some((e) => e.level === 'warn' && /degraded mode/.test(e.message))).toBe(true);
  await waitUntilEqual(url, backup.url('pgferry_degraded'), 10_000);
  await waitFor('a first schema comparison', () => server.sourceStatus()[0].schema?.equal === true, 10_000);

  await query(url, 'ALTER TABLE items ADD COLUMN extra int');
  const t0 = Date.now();
  await waitFor('drift to be reported', () => server.sourceStatus()[0].schema?.equal === false, 10_000);
  // one check period (2 s) plus the time for the replica to reach the position the hash was read at
  expect(Date.now() - t0).toBeLessThan(5000);
  const s = server.sourceStatus()[0].schema;
  expect(s?.primaryHash).not.toBe(s?.replicaHash);
});
