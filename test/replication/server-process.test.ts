/**
 * Acceptance (issue 4, item 7; issue 2 CLI): `pgferry server` with replication, the snapshot schedule and
 * FTP all running stops cleanly on SIGTERM within 10 s, with an agent connected and an FTP client logged in;
 * the agent's clean stop is seen by the server as CLOSE.
 */
import { Client as FtpClient } from 'basic-ftp';
import { freePort } from '../harness/cluster';
import { createDatabase, dropDatabase, query, sharedClusters, uniqueName } from '../harness/db';
import {
  agentConfigFor,
  serverConfigFor,
  spawnCli,
  tempDir,
  waitForOutput,
  writeYaml,
} from '../support/pgferry';

const { primary, backup } = sharedClusters();
const source = { name: 'proc', password: 'pw-proc', database: uniqueName('src_proc') };

afterAll(async () => {
  await dropDatabase(primary, source.database);
  await dropDatabase(backup, 'pgferry_proc');
});

it('stops replication, scheduler and FTP on SIGTERM within 10 s', async () => {
  const url = await createDatabase(primary, source.database);
  await query(url, 'CREATE TABLE t (id int PRIMARY KEY)');
  const dir = tempDir('proc');
  const ftpPort = await freePort();
  const pasv = 31000 + Math.floor(Math.random() * 500) * 10;
  const cfg = await serverConfigFor(backup, [source], dir, {
    snapshots: { dir: `${dir}/snapshots`, enabled: true, schedule: '0 3 * * *' },
    ftp: { enabled: true, host: '127.0.0.1', port: ftpPort, passivePorts: `${pasv}-${pasv + 9}` },
    log: { level: 'info', format: 'json' },
    http: { enabled: true, host: '127.0.0.1', port: await freePort() },
  });
  const server = spawnCli(['server', '--config', writeYaml(dir, 'server.yaml', cfg)]);
  await waitForOutput(server, /backup server started/);
  const port = (cfg.listen as { port: number }).port;
  const agentYaml = writeYaml(
    dir,
    'agent.yaml',
    agentConfigFor(primary, source, port, {
      log: { level: 'info', format: 'json' },
      http: { enabled: true, host: '127.0.0.1', port: await freePort() },
    }),
  );
  const agent = spawnCli(['agent', '--config', agentYaml]);
  await waitForOutput(agent, /streaming changes/, 60_000);

  // pgferry status, both roles: the default FTP password needs attention on the server (exit 1), the agent is well
  const serverYaml = `${dir}/server.yaml`;
  const st = spawnCli(['status', '--config', serverYaml, '--json']);
  expect(await st.exited).toBe(1);
  const sj = JSON.parse(st.output()) as {
    role: string;
    attention: string[];
    sources: { source: string; connected: boolean; appliedLsn: string }[];
  };
  expect(sj.role).toBe('server');
  expect(sj.sources[0]).toMatchObject({ source: 'proc', connected: true });
  expect(sj.sources[0].appliedLsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
  expect(sj.attention.join()).toMatch(/default password/);
  const ast = spawnCli(['status', '--config', agentYaml, '--json']);
  expect(await ast.exited).toBe(0);
  expect(JSON.parse(ast.output())).toMatchObject({
    role: 'agent',
    connected: true,
    slotExists: true,
    phase: 'streaming',
  });
  const ftp = new FtpClient(5000);
  await ftp.access({ host: '127.0.0.1', port: ftpPort, user: 'backup', password: 'backup' });
  expect(server.output()).toMatch(/default password/);

  agent.kill('SIGTERM');
  expect(await agent.exited).toBe(0);
  await waitForOutput(server, /agent announced a clean stop/);

  const gone = spawnCli(['status', '--config', agentYaml]);
  expect(await gone.exited).toBe(2);

  const t0 = Date.now();
  server.kill('SIGTERM');
  const code = await server.exited;
  expect(Date.now() - t0).toBeLessThan(10_000);
  expect(code).toBe(0);
  expect(server.output()).toMatch(/backup server stopped/);
  ftp.close();
});
