/**
 * Acceptance (issue 2, item 3): during a pgbench load, kill -9 the agent, then the server, then stop the
 * backup-side PostgreSQL in immediate mode, then restart the primary; after restarts the replica equals the primary: no row missing,
 * none doubled (pgbench_history has no unique key, so a doubled transaction would show).
 */
import { Cluster } from '../harness/cluster';
import { createDatabase, uniqueName, waitFor } from '../harness/db';
import { replicaAppliedLsn, tablesDiffer, waitUntilEqual } from '../support/compare';
import { pgbenchInit, pgbenchRun } from '../support/pgbench';
import {
  agentConfigFor,
  type Proc,
  serverConfigFor,
  spawnCli,
  tempDir,
  waitForOutput,
  writeYaml,
} from '../support/pgferry';

const dbName = uniqueName('src_crash');
const source = { name: 'crash', password: 'pw-crash', database: dbName };
let backup: Cluster;
let primary: Cluster;
let primaryUrl: string;
let serverYaml: string;
let agentYaml: string;
const procs: Proc[] = [];

const startServer = () => {
  const p = spawnCli(['server', '--config', serverYaml]);
  procs.push(p);
  return p;
};
const startAgent = () => {
  const p = spawnCli(['agent', '--config', agentYaml]);
  procs.push(p);
  return p;
};

beforeAll(async () => {
  [primary, backup] = await Promise.all([
    Cluster.create({ name: 'crash-primary' }),
    Cluster.create({ name: 'crash-backup' }),
  ]);
  primaryUrl = await createDatabase(primary, dbName);
  await pgbenchInit(primary, dbName, 1);
  const dir = tempDir('crash');
  const serverCfg = await serverConfigFor(backup, [source], dir, { log: { level: 'info', format: 'json' } });
  serverYaml = writeYaml(dir, 'server.yaml', serverCfg);
  const port = (serverCfg.listen as { port: number }).port;
  agentYaml = writeYaml(
    dir,
    'agent.yaml',
    agentConfigFor(primary, source, port, { log: { level: 'info', format: 'json' } }),
  );
});

afterAll(async () => {
  for (const p of procs) p.kill('SIGKILL');
  await Promise.all(procs.map((p) => p.exited));
  await primary?.destroy();
  await backup?.destroy();
});

it('loses nothing and doubles nothing through kill -9 of agent and server and an immediate stop of the replica', async () => {
  const replicaUrl = backup.url('pgferry_crash');
  let server = startServer();
  let agent = startAgent();
  await waitForOutput(agent, /streaming changes/, 60_000);
  const load = pgbenchRun(primary, dbName, { clients: 4, seconds: 24 });
  const advanced = async () => {
    const before = await replicaAppliedLsn(replicaUrl);
    await waitFor(
      'the replica to apply more',
      async () => (await replicaAppliedLsn(replicaUrl)) !== before,
      20_000,
    );
  };

  await advanced();
  agent.kill('SIGKILL');
  await agent.exited;
  agent = startAgent();
  await waitForOutput(agent, /streaming changes/, 30_000);
  await advanced();

  server.kill('SIGKILL');
  await server.exited;
  server = startServer();
  await waitForOutput(server, /agent connected/, 30_000);
  await advanced();

  await backup.stop('immediate');
  await backup.start();
  await advanced();

  const txns = await load;
  expect(txns).toBeGreaterThan(500);

  // the primary restarts (pgbench cannot outlive that, so it runs again afterwards)
  await primary.stop('fast');
  await primary.start();
  expect(await pgbenchRun(primary, dbName, { clients: 2, seconds: 4 })).toBeGreaterThan(50);
  await waitUntilEqual(primaryUrl, replicaUrl, 60_000);
  expect(await tablesDiffer(primaryUrl, replicaUrl)).toEqual([]);
  agent.kill('SIGTERM');
  server.kill('SIGTERM');
  expect(await agent.exited).toBe(0);
  expect(await server.exited).toBe(0);
});
