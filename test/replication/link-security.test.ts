/**
 * Acceptance (issue 2, items 7 and 9): two agents replicate two source databases into one server over
 * TLS (tls: auto, fingerprint pinned), each into its own replica database; meanwhile a wrong password,
 * an unknown source, a wrong fingerprint, an incompatible version, garbage and an oversized frame are each
 * refused with a clear log line, and the good agents keep flowing.
 */
import * as net from 'node:net';
import * as tls from 'node:tls';
import type { Agent } from '../../agent/agent';
import { connectToServer } from '../../agent/link';
import type { BackupServer } from '../../backup-server/server';
import { agentConfigSchema, resolveAgentConfig } from '../../shared/config/agent-config';
import { parseConfig } from '../../shared/config/load';
import { isPgferryError } from '../../shared/errors';
import type { LogEntry } from '../../shared/log';
import { encodeFrame } from '../../shared/protocol/frame';
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
const sources = [
  { name: 'alpha', password: 'pw-alpha', database: uniqueName('src_alpha') },
  { name: 'beta', password: 'pw-beta', database: uniqueName('src_beta') },
];
let server: BackupServer;
let serverLog: LogEntry[];
const agents: Agent[] = [];

function tlsCfg(fingerprint: string) {
  return { fingerprint };
}

beforeAll(async () => {
  for (const s of sources) {
    const url = await createDatabase(primary, s.database);
    await query(
      url,
      `CREATE TABLE items (id int PRIMARY KEY, who text); INSERT INTO items SELECT g, '${s.name}' FROM generate_series(1, 1000) g`,
    );
  }
  const dir = tempDir('link');
  const mem = memoryLogger({ role: 'server' });
  serverLog = mem.entries;
  server = await startServerInProcess(
    await serverConfigFor(backup, sources, dir, { tls: 'auto', auth: { maxFailures: 50 } }),
    mem.log,
  );
  const fp = server.tls?.fingerprint ?? '';
  expect(fp).toMatch(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
  for (const s of sources) {
    agents.push(
      startAgentInProcess(
        agentConfigFor(primary, s, server.port, {
          server: { host: '127.0.0.1', port: server.port, password: s.password, tls: tlsCfg(fp) },
        }),
        memoryLogger({ role: 'agent' }).log,
      ),
    );
  }
  await waitFor('both agents streaming', () => agents.every((a) => a.st.phase === 'streaming'), 60_000);
});

afterAll(async () => {
  for (const a of agents) await a.stop();
  await server?.stop();
  for (const s of sources) {
    await dropDatabase(primary, s.database);
    await dropDatabase(backup, `pgferry_${s.name}`);
  }
});

function badAgent(over: { name?: string; password?: string; fingerprint?: string }) {
  const s = sources[0];
  return resolveAgentConfig(
    parseConfig(
      agentConfigSchema,
      agentConfigFor(primary, { ...s, name: over.name ?? s.name }, server.port, {
        server: {
          host: '127.0.0.1',
          port: server.port,
          password: over.password ?? s.password,
          tls: tlsCfg(over.fingerprint ?? server.tls?.fingerprint ?? ''),
        },
      }),
    ),
  );
}

async function refusedWith(over: Parameters<typeof badAgent>[0]): Promise<string> {
  try {
    const c = await connectToServer(badAgent(over));
    c.destroy();
    return 'accepted';
  } catch (e) {
    return isPgferryError(e) ? e.code : String(e);
  }
}

function rawTls(): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port: server.port, rejectUnauthorized: false }, () =>
      resolve(s),
    );
    s.on('error', reject);
  });
}

const logged = (re: RegExp) =>
  serverLog.some((e) =>
    e.message === 'refused an agent connection' || e.message === 'refused a connection: bad frame'
      ? re.test(JSON.stringify(e))
      : false,
  );

it('refuses bad logins and bad peers with a clear log line while the good agents keep replicating', async () => {
  expect(await refusedWith({ password: 'wrong' })).toBe('AUTH_FAILED');
  await waitFor('a log line for the wrong password', () => logged(/AUTH_FAILED.*alpha/));
  expect(await refusedWith({ name: 'ghost' })).toBe('AUTH_FAILED');
  await waitFor('a log line for the unknown source', () => logged(/AUTH_FAILED.*ghost/));
  expect(await refusedWith({ fingerprint: 'AA:'.repeat(31) + 'AA' })).toBe('TLS_FINGERPRINT');

  const garbage = await rawTls();
  garbage.write(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
  await waitFor('a log line for garbage', () => logged(/FRAME_TOO_LARGE|PROTOCOL_ERROR/));
  garbage.destroy();

  const oversized = await rawTls();
  const big = Buffer.alloc(8);
  big.writeUInt32BE(512 * 1024 * 1024, 0);
  oversized.write(big);
  await waitFor('a log line for the oversized frame', () => logged(/exceeds the limit/));
  oversized.destroy();

  const old = await rawTls();
  old.write(
    encodeFrame({
      tag: 'hello',
      protocol: 'pgferry',
      versions: [99],
      source: 'alpha',
      pgferryVersion: '9.0.0',
      clientNonce: 'x',
    }),
  );
  await waitFor('a log line naming both protocol versions', () => logged(/PROTOCOL_VERSION.*99.*speaks 1/));
  old.destroy();

  const plain = net.connect(server.port, '127.0.0.1');
  plain.write(encodeFrame({ tag: 'hello' }));
  await new Promise((r) => plain.on('close', r));

  // the good agents were never disturbed, and each source went to its own database
  for (const s of sources)
    await query(
      primary.url(s.database),
      `INSERT INTO items SELECT g, '${s.name}' FROM generate_series(1001, 1500) g`,
    );
  for (const s of sources)
    await waitUntilEqual(primary.url(s.database), backup.url(`pgferry_${s.name}`), 20_000);
  const [a] = await query<{ n: string }>(
    backup.url('pgferry_alpha'),
    `SELECT count(*)::text AS n FROM items WHERE who = 'beta'`,
  );
  expect(a.n).toBe('0');
  const dbs = await query<{ datname: string }>(
    backup.url(),
    `SELECT datname FROM pg_database WHERE datname LIKE 'pgferry_ghost%'`,
  );
  expect(dbs).toEqual([]);
});
