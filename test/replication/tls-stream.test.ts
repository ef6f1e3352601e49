/**
 * The agent's change stream over TLS (a primary with `ssl = on`, the agent connecting with TLS), with read
 * pacing on as in production: the walsender's connection is verified to be encrypted (pg_stat_ssl), a
 * trickle of small transactions (the paced path) and a bulk one (full reads, never paused) arrive whole and
 * in order.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { Client } from 'pg';
import { ChangeStream } from '../../agent/change-stream';
import type { StreamEvent } from '../../agent/pgoutput-decoder';
import { CopyOut } from '../../shared/pg-copy-out';
import { readBufferSocket, readFeedOf } from '../../shared/pg-read-buffer';
import { Cluster, makeTempDir } from '../harness/cluster';
import { createDatabase, waitFor, withClient } from '../harness/db';
import { writeSelfSignedCert } from '../support/self-signed';

const isRoot = process.getuid?.() === 0;
let cluster: Cluster;
let url: string;
let certDir: string;

beforeAll(async () => {
  // the server's key must belong to the user running it and be private
  certDir = makeTempDir('pgferry-pg-tls-');
  const { keyFile: key, certFile: cert } = writeSelfSignedCert(certDir);
  fs.chmodSync(key, 0o600);
  if (isRoot) execFileSync('chown', ['postgres:postgres', key, cert]);
  cluster = await Cluster.create({
    name: 'tls',
    settings: { ssl: 'on', ssl_cert_file: `'${cert}'`, ssl_key_file: `'${key}'` },
  });
  url = await createDatabase(cluster, 'tls_stream');
  await withClient(url, async (c) => {
    await c.query(`CREATE TABLE t (id int PRIMARY KEY, note text NOT NULL);
      CREATE PUBLICATION tls_pub FOR TABLE t;`);
    await c.query(`SELECT pg_create_logical_replication_slot('tls_slot', 'pgoutput')`);
  });
}, 60_000);

afterAll(async () => {
  await cluster?.destroy();
  fs.rmSync(certDir, { recursive: true, force: true });
});

const tlsConfig = () => ({
  host: '127.0.0.1',
  port: cluster.port,
  user: 'postgres',
  database: 'tls_stream',
  ssl: { rejectUnauthorized: false },
});

it('gives pg a TLS socket whose native handle read pacing can stop and start', async () => {
  // read-pacer.ts leaves a socket without readStop/readStart unpaced (silently): pin that pg's TLS socket has them
  const c = new Client(tlsConfig());
  await c.connect();
  try {
    const socket = (c as unknown as { connection: { stream: { encrypted?: boolean; _handle?: object } } })
      .connection.stream;
    expect(socket.encrypted).toBe(true);
    const handle = socket._handle as { readStop?: unknown; readStart?: unknown };
    expect(typeof handle.readStop).toBe('function');
    expect(typeof handle.readStart).toBe('function');
  } finally {
    await c.end();
  }
});

it('gives a TLS connection asking for its own read buffer the plain socket, and COPY still reads', async () => {
  // pg reads through the TLS socket it puts on top: CopyOut must find no feed there and read the plain way
  const c = new Client({ ...tlsConfig(), stream: readBufferSocket });
  await c.connect();
  try {
    const socket = (c as unknown as { connection: { stream: object & { encrypted?: boolean } } }).connection
      .stream;
    expect(socket.encrypted).toBe(true);
    expect(readFeedOf(socket)).toBeNull();
    const copy = c.query(new CopyOut('COPY (SELECT i FROM generate_series(1, 50000) i) TO STDOUT', 4096));
    const parts: Buffer[] = [];
    for await (const chunk of copy) parts.push(Buffer.from(chunk as Buffer));
    const want = Array.from({ length: 50_000 }, (_, i) => `${i + 1}\n`).join('');
    expect(Buffer.concat(parts).toString()).toBe(want);
    expect(copy.rowCount).toBe(50_000);
  } finally {
    await c.end();
  }
});

it('streams small and bulk transactions whole over an encrypted connection, with read pacing on', async () => {
  const stream = new ChangeStream(tlsConfig(), 'tls_slot', 'tls_pub', {
    streamInProgress: true,
    readPauseMs: 3,
  });
  const inserted: number[] = [];
  let commits = 0;
  const onEvent = (e: StreamEvent): undefined => {
    const ev = e.k === 'SX' ? e.ev : e;
    if (ev.k === 'I') inserted.push(Number(ev.v[0]));
    if (ev.k === 'C' || ev.k === 'SC') commits++;
    return undefined;
  };
  const running = stream.run('0/0', { onEvent, onKeepalive: () => undefined });

  await waitFor('the walsender to be connected', async () =>
    withClient(url, async (c) => {
      const r = await c.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM pg_stat_activity WHERE backend_type = 'walsender'`,
      );
      return r.rows[0].n === 1;
    }),
  );
  const ssl = await withClient(url, (c) =>
    c.query<{ ssl: boolean; version: string | null }>(
      `SELECT s.ssl, s.version FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
        WHERE a.backend_type = 'walsender'`,
    ),
  );
  expect(ssl.rows).toHaveLength(1);
  expect(ssl.rows[0].ssl).toBe(true);
  expect(ssl.rows[0].version).toMatch(/^TLS/);

  // a trickle: 30 one-row transactions a few milliseconds apart (each read is small: the paced path)
  await withClient(url, async (c) => {
    for (let i = 1; i <= 30; i++) {
      await c.query('INSERT INTO t VALUES ($1, $2)', [i, `small ${i}`]);
      await new Promise((r) => setTimeout(r, 5));
    }
    // then one transaction of 40,000 rows (about 10 MB: full reads, which are never paused)
    await c.query(`INSERT INTO t SELECT g, repeat(md5(g::text), 8) FROM generate_series(31, 40030) g`);
  });
  await waitFor('every row to arrive', () => inserted.length >= 40_030, 60_000);
  await stream.stop();
  await running;

  expect(commits).toBe(31);
  expect(inserted).toEqual(Array.from({ length: 40_030 }, (_, i) => i + 1));
}, 120_000);
