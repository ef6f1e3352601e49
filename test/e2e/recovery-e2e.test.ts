/**
 * The whole job, end to end (issue 5 items 1 and 6, issue 7 item 4): a primary with data and schema
 * changes → replica → verified snapshot → `install.sh --role agent --recover` (the real `pgferry recover`
 * over the server's FTP) into a clean third cluster → contents identical, sequences usable → the installed
 * agent's first start makes a full sync that the server applies. And a replica whose schema drifted from
 * the primary's fails the next snapshot run loudly.
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Agent } from '../../agent/agent';
import { type AssembledServer, assembleServer } from '../../backup-server/assemble';
import { parseConfig } from '../../shared/config/load';
import { resolveServerConfig, serverConfigSchema } from '../../shared/config/server-config';
import { SCHEMA_HASH_SQL } from '../../shared/schema-hash';
import { Cluster, freePort } from '../harness/cluster';
import { createDatabase, dropDatabase, query, sharedClusters, uniqueName, waitFor } from '../harness/db';
import { tablesDiffer, waitUntilEqual } from '../support/compare';
import {
  agentConfigFor,
  memoryLogger,
  type Proc,
  serverConfigFor,
  spawnCli,
  startAgentInProcess,
  tempDir,
  waitForOutput,
  writeYaml,
} from '../support/pgferry';

const REPO = path.resolve(__dirname, '../..');
const { primary, backup } = sharedClusters();
const source = { name: 'e2e', password: 'pw-e2e', database: uniqueName('src_e2e') };
const replicaUrl = backup.url('pgferry_e2e');
let target: Cluster;
let assembled: AssembledServer;
let agent: Agent | null = null;
let installedAgent: Proc | null = null;
let primaryUrl: string;
let dir: string;
let ftpPort: number;

beforeAll(async () => {
  target = await Cluster.create({ name: 'e2e-target' });
  primaryUrl = await createDatabase(primary, source.database);
  await query(
    primaryUrl,
    `CREATE TABLE hosts (id serial PRIMARY KEY, name text NOT NULL, seen timestamptz);
     CREATE TABLE samples (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, host int REFERENCES hosts, v numeric);
     INSERT INTO hosts (name, seen) SELECT 'h' || g, now() FROM generate_series(1, 200) g;
     INSERT INTO samples (host, v) SELECT 1 + g % 200, g / 3.0 FROM generate_series(1, 5000) g;`,
  );
  dir = tempDir('e2e');
  fs.mkdirSync(path.join(dir, 'snapshots')); // the snapshot volume is the operator's: pgferry never creates it
  ftpPort = await freePort();
  const pasv = 32000 + Math.floor(Math.random() * 400) * 10;
  const raw = await serverConfigFor(backup, [source], dir, {
    ftp: { enabled: true, host: '127.0.0.1', port: ftpPort, passivePorts: `${pasv}-${pasv + 9}` },
  });
  assembled = assembleServer(
    resolveServerConfig(parseConfig(serverConfigSchema, raw)),
    memoryLogger({ role: 'server' }).log,
  );
  await assembled.server.start();
  agent = startAgentInProcess(
    agentConfigFor(primary, source, assembled.server.port, {
      source: { name: source.name, url: primaryUrl, slot: 'pgferry_e2e', appVersion: '7.1.0' },
    }),
    memoryLogger({ role: 'agent' }).log,
  );
  await waitFor('streaming', () => agent?.st.phase === 'streaming', 60_000);
});

afterAll(async () => {
  installedAgent?.kill('SIGKILL');
  await installedAgent?.exited;
  await agent?.stop();
  await assembled?.server.stop();
  await dropDatabase(primary, source.database);
  await dropDatabase(backup, 'pgferry_e2e');
  await target?.destroy();
});

function sh(
  cmd: string,
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { env: { ...process.env, ...env }, timeout: 120_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, out: stdout + stderr });
    });
  });
}

it('snapshots a replica that followed schema changes, recovers it into a clean installation, and the new primary syncs in full', async () => {
  // schema changes and writes on the primary, replicated
  await query(
    primaryUrl,
    `ALTER TABLE hosts ADD COLUMN site text DEFAULT 'north'; CREATE TABLE notes (id serial PRIMARY KEY, body text)`,
  );
  await query(
    primaryUrl,
    `INSERT INTO notes (body) SELECT 'n' || g FROM generate_series(1, 300) g; UPDATE hosts SET site = 'south' WHERE id % 2 = 0`,
  );
  await query(
    primaryUrl,
    `INSERT INTO samples (host, v) SELECT 1 + g % 200, g FROM generate_series(1, 1000) g`,
  );
  await waitUntilEqual(primaryUrl, replicaUrl, 20_000);

  // a verified snapshot, consistent with the replica (= the primary, writes stopped) at its LSN
  const run = await assembled.snapshots.createSnapshot(source.name);
  expect(run.record.status).toBe('ok');
  const [snap] = await assembled.snapshots.list(source.name);
  expect(snap.manifest.schemaVerified).toBe(true);
  expect(snap.manifest.appVersion).toBe('7.1.0');

  // the monitoring host dies; a fresh one is installed in recovery mode
  await agent?.stop();
  agent = null;
  const prefix = path.join(dir, 'prefix');
  const agentYaml = writeYaml(
    dir,
    'agent.yaml',
    agentConfigFor(target, { ...source, database: 'monitoring' }, assembled.server.port, {
      source: { name: source.name, url: target.url('monitoring'), slot: 'pgferry_e2e', appVersion: '7.1.0' },
      log: { level: 'info', format: 'json' },
    }),
  );
  const install = await sh(
    path.join(REPO, 'deploy/install.sh'),
    [
      '--role',
      'agent',
      '--prefix',
      prefix,
      '--test-mode',
      '--config',
      agentYaml,
      '--recover',
      '--host',
      '127.0.0.1',
      '--port',
      String(ftpPort),
      '--latest',
      '--source',
      source.name,
      '--app-version',
      '7.1.0',
      '--work-dir',
      path.join(dir, 'work'),
    ],
    { PGFERRY_FTP_PASSWORD: 'backup' },
  );
  expect(install.out).toMatch(/restored snapshot e2e\//);
  expect(install.code).toBe(0);
  const restored = target.url('monitoring');
  expect(await tablesDiffer(primaryUrl, restored)).toEqual([]);
  const hash = async (url: string) => (await query<{ hash: string }>(url, SCHEMA_HASH_SQL))[0].hash;
  expect(await hash(restored)).toBe(await hash(primaryUrl));
  // the restored system can insert at once into every table with a serial or identity column
  await query(
    restored,
    `INSERT INTO hosts (name) VALUES ('new'); INSERT INTO samples (host, v) VALUES (1, 1); INSERT INTO notes (body) VALUES ('new')`,
  );

  // the installed agent's first start: a new primary, so a full sync that the server applies
  installedAgent = spawnCli(['agent', '--config', path.join(prefix, 'etc/agent.yaml')]);
  await waitForOutput(installedAgent, /making a full initial copy.*a new primary/, 60_000);
  await waitForOutput(installedAgent, /streaming changes/, 60_000);
  await query(restored, `INSERT INTO notes (body) VALUES ('after the sync')`);
  await waitUntilEqual(restored, replicaUrl, 20_000);
});

it('fails the snapshot run loudly when the replica schema differs from the primary', async () => {
  await waitFor('a connected agent', () => assembled.server.sourceStatus()[0].phase === 'streaming', 30_000);
  await query(replicaUrl, 'ALTER TABLE notes ADD COLUMN stray int');
  const run = await assembled.snapshots.createSnapshot(source.name);
  expect(run.record.status).toBe('failed');
  expect(run.record.errorCode).toBe('SCHEMA_MISMATCH');
  expect(run.record.error).toMatch(/differs from the primary/);
});
