/**
 * COPY TO read from a socket with one read buffer of its own (shared/pg-read-buffer.ts), as snapshots and
 * the agent's initial copy connect: every read lands in the same memory and CopyOut parses it in place,
 * byte for byte what a plain socket gives; pg's own traffic around the COPY (queries, an error in the
 * middle of one) is unchanged, and a consumer that falls behind stops the socket's reads.
 */
import { Client } from 'pg';
import { CopyOut } from '../../shared/pg-copy-out';
import { READ_BUFFER_BYTES, readBufferSocket, readFeedOf } from '../../shared/pg-read-buffer';
import { createDatabase, dropDatabase, sharedClusters, uniqueName, waitFor, withClient } from '../harness/db';

const { backup } = sharedClusters();
const dbName = uniqueName('readbuf');
let url: string;
const ROWS = 20_000;
/** ≈ 3 MB of COPY text: a dozen reads of the socket's buffer and more */
const COPY_SQL = 'COPY t TO STDOUT';

beforeAll(async () => {
  url = await createDatabase(backup, dbName);
  await withClient(url, (c) =>
    c.query(`CREATE TABLE t (id int PRIMARY KEY, note text NOT NULL);
      INSERT INTO t SELECT i, repeat(md5(i::text), 1 + i % 8) FROM generate_series(1, ${ROWS}) i`),
  );
});

afterAll(async () => {
  await dropDatabase(backup, dbName);
});

async function connect(withReadBuffer: boolean): Promise<Client> {
  const c = new Client({ connectionString: url, ...(withReadBuffer ? { stream: readBufferSocket } : {}) });
  await c.connect();
  return c;
}

const socketOf = (c: Client) =>
  (c as unknown as { connection: { stream: { _handle: { reading: boolean } } } }).connection.stream;

async function copyAll(c: Client, sql = COPY_SQL): Promise<{ data: Buffer; rows: number }> {
  const copy = c.query(new CopyOut(sql, 64 * 1024));
  const parts: Buffer[] = [];
  for await (const chunk of copy) parts.push(Buffer.from(chunk as Buffer));
  return { data: Buffer.concat(parts), rows: copy.rowCount };
}

describe('a connection with its own read buffer', () => {
  it('gives CopyOut every read in the same memory, and the same bytes as a plain socket', async () => {
    const plain = await connect(false);
    const own = await connect(true);
    try {
      expect(readFeedOf(socketOf(plain))).toBeNull();
      const feed = readFeedOf(socketOf(own));
      expect(feed).not.toBeNull();
      const want = await copyAll(plain);

      // watch what the feed hands to CopyOut
      const memory = new Set<ArrayBufferLike>();
      let reads = 0;
      const claim = Object.getOwnPropertyDescriptor(feed, 'consumer');
      let current: ((b: Buffer) => void) | null = null;
      Object.defineProperty(feed, 'consumer', {
        configurable: true,
        get: () => current,
        set: (fn: ((b: Buffer) => void) | null) => {
          current =
            fn &&
            ((b) => {
              reads++;
              memory.add(b.buffer);
              expect(b.length).toBeLessThanOrEqual(READ_BUFFER_BYTES);
              fn(b);
            });
        },
      });
      const got = await copyAll(own);
      if (claim) Object.defineProperty(feed, 'consumer', claim);

      expect(got.rows).toBe(ROWS);
      expect(got.data.equals(want.data)).toBe(true);
      expect(reads).toBeGreaterThan(10);
      expect(memory.size).toBe(1);
      expect(current).toBeNull(); // the feed went back to pg at the end of the COPY

      // pg's own replies, also ones spanning many reads, still arrive whole (as copies)
      const big = await own.query<{ s: string }>(`SELECT repeat('ab', 400000) AS s`);
      expect(big.rows[0].s.length).toBe(800_000);
      expect((await own.query('SELECT count(*)::int AS n FROM t')).rows[0].n).toBe(ROWS);
    } finally {
      await plain.end();
      await own.end();
    }
  });

  it('fails a COPY that errors half-way and stays usable', async () => {
    const own = await connect(true);
    try {
      await expect(
        copyAll(
          own,
          `COPY (SELECT CASE WHEN id < 15000 THEN note ELSE (1 / (id - id))::text END FROM t ORDER BY id) TO STDOUT`,
        ),
      ).rejects.toThrow(/division by zero/);
      expect((await own.query('SELECT 41 + 1 AS n')).rows[0].n).toBe(42);
      expect((await copyAll(own)).rows).toBe(ROWS);
    } finally {
      await own.end();
    }
  });

  it('stops reading the socket while the consumer is behind, and loses nothing', async () => {
    const plain = await connect(false);
    const own = await connect(true);
    try {
      const want = await copyAll(plain);
      const copy = own.query(new CopyOut(COPY_SQL, 64 * 1024));
      const parts: Buffer[] = [];
      const it = copy[Symbol.asyncIterator]();
      const first = await it.next();
      parts.push(Buffer.from(first.value as Buffer));
      // the consumer now waits: the socket's reads must stop (back-pressure), not pile up in memory
      await waitFor('the socket to stop reading', () => socketOf(own)._handle.reading === false, 5_000, 5);
      for (let r = await it.next(); !r.done; r = await it.next()) parts.push(Buffer.from(r.value as Buffer));
      expect(Buffer.concat(parts).equals(want.data)).toBe(true);
    } finally {
      await plain.end();
      await own.end();
    }
  });

  it('fails, not hangs, when the server goes away in the middle of a COPY', async () => {
    const own = await connect(true);
    own.on('error', () => undefined); // the terminated connection also reports on the client
    try {
      const pid = (await own.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0].pid;
      // 50 MB: more than the socket buffers hold, so the backend is still sending when it is terminated
      const copy = own.query(
        new CopyOut(`COPY (SELECT repeat('x', 1000) FROM generate_series(1, 50000)) TO STDOUT`, 64 * 1024),
      );
      const it = copy[Symbol.asyncIterator]();
      await it.next(); // the COPY is running, and its reader is paused with more to come
      await withClient(url, (c) => c.query('SELECT pg_terminate_backend($1)', [pid]));
      const drain = (async () => {
        for (let r = await it.next(); !r.done; r = await it.next());
      })();
      await expect(drain).rejects.toThrow(/terminat/i);
    } finally {
      await own.end().catch(() => undefined);
    }
  });
});
