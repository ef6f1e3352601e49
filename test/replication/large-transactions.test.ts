/**
 * Large transactions: the agent asks pgoutput (protocol 2, streaming 'on') to stream a transaction's
 * changes while it is still open, once its decoded size passes logical_decoding_work_mem (64 kB here, set
 * on the source database so only this file's walsenders are affected); the backup server spools them and
 * applies them at the stream commit, or drops them at a stream abort (whole transaction or subtransaction).
 * Whatever happens (interleaved small commits, aborts, savepoints, an agent restart in the middle) the
 * replica ends equal to the primary, and pg_stat_replication_slots proves the primary did stream.
 */
import { Client } from 'pg';
import { Applier } from '../../backup-server/replica/applier';
import type { Agent } from '../../agent/agent';
import { query, sharedClusters, tableHash, waitFor } from '../harness/db';
import { tablesDiffer, waitUntilEqual } from '../support/compare';
import { type Pair, startPair } from '../support/pair';
import { agentConfigFor, memoryLogger, type SourceSpec, startAgentInProcess } from '../support/pgferry';

const { primary } = sharedClusters();
const NAME = 'largetx';
const CONTROL_NAME = 'largetx-off';

let pair: Pair;
let control: Pair;
const extraAgents: Agent[] = [];

const seed = async (url: string) => {
  const db = new URL(url).pathname.slice(1);
  await query(
    url,
    `ALTER DATABASE "${db}" SET logical_decoding_work_mem = '64kB';
     CREATE TABLE big (id int PRIMARY KEY, grp text NOT NULL, v text, blob text);
     CREATE TABLE small (id serial PRIMARY KEY, v text NOT NULL);
     CREATE TABLE ticks (id serial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now());
     CREATE TABLE sp (id int PRIMARY KEY, part text NOT NULL, v text);
     -- no unique key: a transaction applied twice would show as doubled rows
     CREATE TABLE hist (tid int, delta int, note text);
     -- matched by whole rows on the replica: a streamed transaction touching it is applied from the spool
     CREATE TABLE fullrow (k int NOT NULL, v text);
     ALTER TABLE fullrow REPLICA IDENTITY FULL`,
  );
};

/** The source as startPair made it (same naming rules), to start another agent for it. */
function sourceOf(p: Pair, name: string): SourceSpec {
  return { name, password: `pw-${name}`, database: new URL(p.primaryUrl).pathname.slice(1) };
}

function slotOf(p: Pair, name: string): string {
  const cfg = agentConfigFor(primary, sourceOf(p, name), p.server.port);
  return (cfg.source as { slot: string }).slot;
}

/** what the server reports spooled for this file's source */
function spoolOf(p: Pair): { transactions: number; bytes: number } {
  const st = p.server.sourceStatus().find((x) => x.source === NAME);
  if (!st) throw new Error(`the server has no source ${NAME}`);
  return st.spool;
}

const APPLIED_WHILE_STREAMING = 'applied a large transaction while it ran on the primary';
const APPLIED_FROM_SPOOL = 'applied a large transaction streamed while it ran on the primary';
const GAVE_UP = 'a large transaction is spooled and applied at its commit instead of while it streams';

/** how many server log entries of this file's main pair have this message */
const logged = (message: string) => pair.serverLog.filter((e) => e.message === message).length;
/** [applied early, applied from the spool, early path given up] so far */
const logCounts = () => [logged(APPLIED_WHILE_STREAMING), logged(APPLIED_FROM_SPOOL), logged(GAVE_UP)];

/** The replica's backend applying a streamed transaction as it arrives, with its transaction's own xid. */
async function streamApplyBackend(p: Pair): Promise<{ state: string; writing: boolean }[]> {
  return query<{ state: string; writing: boolean }>(
    p.replicaUrl,
    `SELECT state, backend_xid IS NOT NULL AS writing FROM pg_stat_activity
      WHERE application_name = 'pgferry-stream-apply' AND datname = current_database()`,
  );
}

interface SlotStats {
  streamTxns: number;
  streamCount: number;
  streamBytes: number;
  spillTxns: number;
}

async function slotStats(p: Pair, name: string): Promise<SlotStats> {
  const rows = await query<Record<string, string>>(
    p.primaryUrl,
    `SELECT stream_txns::text AS st, stream_count::text AS sc, stream_bytes::text AS sb, spill_txns::text AS sp
       FROM pg_stat_replication_slots WHERE slot_name = $1`,
    [slotOf(p, name)],
  );
  const r = rows[0] ?? { st: '0', sc: '0', sb: '0', sp: '0' };
  return {
    streamTxns: Number(r.st),
    streamCount: Number(r.sc),
    streamBytes: Number(r.sb),
    spillTxns: Number(r.sp),
  };
}

/**
 * Waits until the slot's statistics satisfy `ok`. The walsender reports them when it replays a commit or
 * abort, so each poll commits a tiny transaction (a row in `ticks`) to have them reported.
 */
async function waitForSlotStats(
  p: Pair,
  name: string,
  what: string,
  ok: (s: SlotStats) => boolean,
): Promise<SlotStats> {
  let last: SlotStats = { streamTxns: -1, streamCount: -1, streamBytes: -1, spillTxns: -1 };
  try {
    await waitFor(
      what,
      async () => {
        await query(p.primaryUrl, 'INSERT INTO ticks DEFAULT VALUES');
        last = await slotStats(p, name);
        return ok(last);
      },
      20_000,
      200,
    );
  } catch (e) {
    throw new Error(`${(e as Error).message}; last slot statistics: ${JSON.stringify(last)}`);
  }
  return last;
}

/** Waits until the given tables are equal on both sides (the replica caught up with those commits). */
async function waitUntilTablesEqual(p: Pair, tables: string[]): Promise<void> {
  await waitFor(
    `${tables.join(', ')} on the replica to equal the primary`,
    async () => {
      for (const t of tables) {
        const [a, b] = await Promise.all([tableHash(p.primaryUrl, t), tableHash(p.replicaUrl, t)]);
        if (a.count !== b.count || a.md5 !== b.md5) return false;
      }
      return true;
    },
    30_000,
    200,
  );
}

async function count(url: string, sql: string): Promise<number> {
  const [{ n }] = await query<{ n: string }>(url, `SELECT count(*)::text AS n FROM ${sql}`);
  return Number(n);
}

/** A connection with an open transaction; `end()` without COMMIT rolls it back. */
async function begin(url: string): Promise<Client> {
  const c = new Client({ connectionString: url });
  await c.connect();
  await c.query('BEGIN');
  return c;
}

/** ~100 kB of incompressible text per row (stored out of line, TOASTed) */
const BLOB_100K = `(SELECT string_agg(md5(random()::text || x::text || g::text), '') FROM generate_series(1, 3200) x)`;

/** `n` rows of ~70 bytes into sp, ids from `from`, tagged `part` */
const spRows = (part: string, from: number, n: number) =>
  `INSERT INTO sp (id, part, v) SELECT g, '${part}', repeat(md5(g::text), 2) FROM generate_series(${from}, ${from + n - 1}) g`;

beforeAll(async () => {
  [pair, control] = await Promise.all([
    startPair({ name: NAME, seed }),
    startPair({ name: CONTROL_NAME, seed, agentExtra: { streamLargeTransactions: false } }),
  ]);
});

afterAll(async () => {
  for (const a of extraAgents) await a.stop();
  await Promise.all([pair?.stop(), control?.stop()]);
});

/**
 * One large transaction (20,000 inserts, a few 100 kB TOASTed values, updates and deletes of its own
 * rows) with small transactions committed on another connection in the middle of it. While it is open,
 * the small ones are on the replica and none of its rows are; after its commit the replica equals the
 * primary. With `streamed`, the primary must have streamed it while open; without, never.
 */
async function interleavedLargeTransaction(p: Pair, name: string, streamed: boolean): Promise<void> {
  const before = await slotStats(p, name);
  const large = await begin(p.primaryUrl);
  try {
    await large.query(
      `INSERT INTO big (id, grp, v) SELECT g, 'c1', 'row ' || g || ' ' || md5(g::text) FROM generate_series(1, 10000) g`,
    );
    await large.query(
      `INSERT INTO big (id, grp, v, blob) SELECT g, 'c1', 'toasted ' || g, ${BLOB_100K} FROM generate_series(100001, 100004) g`,
    );
    for (let i = 1; i <= 3; i++)
      await query(p.primaryUrl, `INSERT INTO small (v) VALUES ('committed inside c1, first half, ${i}')`);
    await large.query(
      `INSERT INTO big (id, grp, v) SELECT g, 'c1', 'row ' || g || ' ' || md5(g::text) FROM generate_series(10001, 20000) g`,
    );
    await large.query(`UPDATE big SET v = v || ' updated' WHERE grp = 'c1' AND id % 10 = 0`);
    // an update that leaves the TOASTed value unchanged, one that replaces it, a delete of one
    await large.query(`UPDATE big SET v = v || ' updated' WHERE id IN (100001, 100002)`);
    await large.query(`UPDATE big SET blob = ${BLOB_100K} FROM (SELECT 100003 AS g) s WHERE id = 100003`);
    await large.query(`DELETE FROM big WHERE id = 100004`);
    await large.query(`DELETE FROM big WHERE grp = 'c1' AND id < 100000 AND id % 7 = 0`);
    for (let i = 1; i <= 3; i++)
      await query(p.primaryUrl, `INSERT INTO small (v) VALUES ('committed inside c1, second half, ${i}')`);

    if (streamed)
      await waitForSlotStats(
        p,
        name,
        'the primary to stream the open transaction',
        (s) => s.streamTxns > before.streamTxns && s.streamBytes > before.streamBytes,
      );
    // the small transactions (and the ticks, committed after whatever was streamed) are applied ...
    await waitUntilTablesEqual(p, ['public.small', 'public.ticks']);
    expect(await count(p.replicaUrl, `small WHERE v LIKE 'committed inside c1%'`)).toBe(6);
    // ... and nothing of the open transaction is visible, although (streamed) the replica is writing it in
    // a transaction of its own that stays open until the primary's commit
    expect(await count(p.replicaUrl, `big WHERE grp = 'c1'`)).toBe(0);
    expect(await streamApplyBackend(p)).toEqual(
      streamed ? [{ state: 'idle in transaction', writing: true }] : [],
    );

    await large.query('COMMIT');
  } finally {
    await large.end();
  }
  await waitUntilEqual(p.primaryUrl, p.replicaUrl, 30_000);
  const rows = await count(p.primaryUrl, `big WHERE grp = 'c1'`);
  expect(rows).toBe(20_000 - Math.floor(20_000 / 7) + 3);
  expect(await count(p.replicaUrl, `big WHERE grp = 'c1'`)).toBe(rows);
  expect(await count(p.replicaUrl, `big WHERE blob IS NOT NULL AND length(blob) = 102400`)).toBe(3);
  expect(await count(p.replicaUrl, `big WHERE id IN (100001, 100002) AND v LIKE '% updated'`)).toBe(2);

  if (streamed) {
    const after = await slotStats(p, name);
    expect(after.streamTxns).toBeGreaterThan(before.streamTxns);
  } else {
    // it did pass the threshold (the walsender spilled it to disk instead), and nothing was streamed
    const after = await waitForSlotStats(
      p,
      name,
      'the primary to spill the large transaction',
      (s) => s.spillTxns > before.spillTxns,
    );
    expect(after.streamTxns).toBe(0);
    expect(after.streamBytes).toBe(0);
  }
}

it('streams a large transaction while small ones commit beside it: they reach the replica first, its rows only at its commit', async () => {
  const applied = logged(APPLIED_WHILE_STREAMING);
  await interleavedLargeTransaction(pair, NAME, true);
  // applied as it arrived; at the commit only the commit itself was left
  expect(logged(APPLIED_WHILE_STREAMING)).toBe(applied + 1);
  expect(await streamApplyBackend(pair)).toEqual([]);
});

it('applies nothing of a large transaction that was streamed and then rolled back; later ones still apply', async () => {
  const before = await slotStats(pair, NAME);
  const large = await begin(pair.primaryUrl);
  try {
    await large.query(
      `INSERT INTO big (id, grp, v) SELECT g, 'c2', 'aborted ' || g FROM generate_series(200001, 205000) g`,
    );
    // changes to committed rows too: the replica must keep them as they were
    await large.query(`UPDATE big SET v = 'overwritten by c2' WHERE grp = 'c1' AND id <= 1000`);
    await large.query(`DELETE FROM big WHERE grp = 'c1' AND id BETWEEN 1001 AND 2000`);
    await waitForSlotStats(
      pair,
      NAME,
      'the primary to stream the transaction before it aborts',
      (s) => s.streamTxns > before.streamTxns,
    );
    // the server shows what it keeps of the running transaction (status, metrics)
    await waitFor('the server to report the spooled transaction', async () => {
      const sp = spoolOf(pair);
      return sp.transactions === 1 && sp.bytes > 64 * 1024;
    });
    await large.query('ROLLBACK');
  } finally {
    await large.end();
  }
  await query(pair.primaryUrl, `INSERT INTO small (v) VALUES ('after the c2 rollback')`);
  await waitUntilEqual(pair.primaryUrl, pair.replicaUrl, 30_000);
  expect(spoolOf(pair)).toEqual({ transactions: 0, bytes: 0 });
  expect(await count(pair.replicaUrl, `big WHERE grp = 'c2' OR v = 'overwritten by c2'`)).toBe(0);
  expect(await count(pair.replicaUrl, `big WHERE grp = 'c1' AND id BETWEEN 1001 AND 2000`)).toBeGreaterThan(
    0,
  );
  expect(await count(pair.replicaUrl, `small WHERE v = 'after the c2 rollback'`)).toBe(1);
});

it('drops exactly the rolled-back savepoints of a streamed transaction, nested ones included', async () => {
  const before = await slotStats(pair, NAME);
  const applied = logged(APPLIED_WHILE_STREAMING);
  const tx = await begin(pair.primaryUrl);
  try {
    await tx.query(spRows('A', 1, 1000));
    await tx.query('SAVEPOINT s1');
    await tx.query(spRows('B', 10001, 3000)); // > 64 kB: streamed before its rollback
    await tx.query(`UPDATE sp SET v = 'from B' WHERE part = 'A'`);
    await tx.query(`DELETE FROM sp WHERE part = 'A' AND id % 2 = 0`);
    await tx.query('ROLLBACK TO SAVEPOINT s1');
    await tx.query(spRows('C', 20001, 1000));
    await tx.query(`UPDATE sp SET v = 'from C' WHERE part = 'A' AND id % 3 = 0`);
    await tx.query('SAVEPOINT s2');
    await tx.query(spRows('D', 30001, 1000));
    await tx.query(`DELETE FROM sp WHERE part = 'C' AND id % 5 = 0`);
    await tx.query('RELEASE SAVEPOINT s2');
    await tx.query('SAVEPOINT s3');
    await tx.query(spRows('E', 40001, 3000));
    await tx.query(`UPDATE sp SET v = 'from E' WHERE part IN ('A', 'C', 'D')`);
    await tx.query('ROLLBACK TO SAVEPOINT s3');
    await tx.query('COMMIT');

    // nested: rolling back to the outer savepoint drops the inner one's changes as well
    await tx.query('BEGIN');
    await tx.query(spRows('N0', 50001, 500));
    await tx.query('SAVEPOINT a');
    await tx.query(spRows('Na', 51001, 2000));
    await tx.query('SAVEPOINT b');
    await tx.query(spRows('Nb', 53001, 2000));
    await tx.query(`UPDATE sp SET v = 'from Nb' WHERE part IN ('N0', 'Na')`);
    await tx.query('ROLLBACK TO SAVEPOINT a');
    await tx.query(spRows('Nafter', 55001, 1000));
    await tx.query('COMMIT');
  } finally {
    await tx.end();
  }
  await waitUntilEqual(pair.primaryUrl, pair.replicaUrl, 30_000);
  const parts = await query<{ part: string; n: string; changed: string }>(
    pair.replicaUrl,
    `SELECT part, count(*)::text AS n, count(*) FILTER (WHERE v LIKE 'from %')::text AS changed
       FROM sp GROUP BY part ORDER BY part`,
  );
  expect(parts).toEqual([
    { part: 'A', n: '1000', changed: '333' },
    { part: 'C', n: '800', changed: '0' },
    { part: 'D', n: '1000', changed: '0' },
    { part: 'N0', n: '500', changed: '0' },
    { part: 'Nafter', n: '1000', changed: '0' },
  ]);
  expect(await count(pair.replicaUrl, `sp WHERE v = 'from C'`)).toBe(333);
  const after = await waitForSlotStats(
    pair,
    NAME,
    'the primary to have streamed both transactions',
    (s) => s.streamTxns >= before.streamTxns + 2,
  );
  expect(after.streamTxns).toBeGreaterThanOrEqual(before.streamTxns + 2);
  // both were applied while they streamed: the rollbacks went to savepoints on the replica
  expect(logged(APPLIED_WHILE_STREAMING)).toBe(applied + 2);
});

/**
 * In open transaction `large`: 4,000 rows of group `grp` from id `from`, streamed by the primary and being
 * written by the replica's early-apply connection when this returns.
 */
async function firstPartApplying(large: Client, grp: string, from: number): Promise<void> {
  const before = await slotStats(pair, NAME);
  await large.query(
    `INSERT INTO big (id, grp, v) SELECT g, '${grp}', '${grp} row ' || g FROM generate_series(${from}, ${from + 3999}) g`,
  );
  await waitForSlotStats(
    pair,
    NAME,
    'the primary to stream the first part',
    (s) => s.streamBytes > before.streamBytes,
  );
  await waitFor(
    'the replica to write the first part',
    async () => (await streamApplyBackend(pair)).length === 1,
  );
}

it('applies early a streamed transaction that only inserts into a table without a key', async () => {
  const applied = logged(APPLIED_WHILE_STREAMING);
  const before = await count(pair.primaryUrl, 'hist');
  await query(
    pair.primaryUrl,
    `INSERT INTO hist (tid, delta, note) SELECT g % 10, g, 'keyless ' || g FROM generate_series(1, 5000) g`,
  );
  await waitUntilTablesEqual(pair, ['public.hist']);
  expect(await count(pair.replicaUrl, 'hist')).toBe(before + 5000);
  expect(logged(APPLIED_WHILE_STREAMING)).toBe(applied + 1);
  await query(pair.primaryUrl, `DELETE FROM hist WHERE note LIKE 'keyless %'`);
  await waitUntilTablesEqual(pair, ['public.hist']);
});

it('does not apply a streamed transaction twice when its early commit happened but the answer was lost', async () => {
  const [applied, fromSpool, gaveUp] = logCounts();
  const before = await count(pair.primaryUrl, 'hist');
  // the early connection's commit reaches the replica, then its answer is "lost"
  const real = Applier.prototype.commitForHandOff;
  const spy = jest.spyOn(Applier.prototype, 'commitForHandOff').mockImplementation(async function (
    this: Applier,
  ) {
    await real.call(this);
    throw new Error('the connection was lost after COMMIT');
  });
  try {
    await query(
      pair.primaryUrl,
      `INSERT INTO hist (tid, delta, note) SELECT g % 10, g, 'lost answer ' || g FROM generate_series(1, 5000) g`,
    );
    await waitFor('the server to give up on the commit', () => logged(GAVE_UP) > gaveUp);
  } finally {
    spy.mockRestore();
  }
  await query(pair.primaryUrl, `INSERT INTO small (v) VALUES ('after the lost answer')`);
  await waitUntilTablesEqual(pair, ['public.hist', 'public.small']);
  // once: the replica's applied position showed the commit had happened, so the spool was not replayed
  expect(await count(pair.replicaUrl, `hist WHERE note LIKE 'lost answer %'`)).toBe(5000);
  expect(await count(pair.replicaUrl, 'hist')).toBe(before + 5000);
  expect(logged(APPLIED_FROM_SPOOL)).toBe(fromSpool);
  expect(logged(APPLIED_WHILE_STREAMING)).toBe(applied + 1);
  expect(pair.serverLog.filter((e) => e.message === GAVE_UP).at(-1)?.reason).toMatch(/lost after COMMIT/);
  await query(pair.primaryUrl, `DELETE FROM hist WHERE note LIKE 'lost answer %'`);
  await waitUntilTablesEqual(pair, ['public.hist']);
});

it('applies from the spool at its commit a streamed transaction that touches a table matched by whole rows, even after part of it was applied early', async () => {
  await query(pair.primaryUrl, `INSERT INTO fullrow SELECT g, 'v' || g FROM generate_series(1, 100) g`);
  await waitUntilTablesEqual(pair, ['public.fullrow']);
  const [applied, fromSpool, gaveUp] = logCounts();
  const large = await begin(pair.primaryUrl);
  try {
    // first a part that is applied as it streams ...
    await firstPartApplying(large, 'c5', 400001);
    // ... then changes the replica can only match by whole rows: that replica transaction is given up
    await large.query(`UPDATE fullrow SET v = v || ' c5' WHERE k % 2 = 0`);
    await large.query(`DELETE FROM fullrow WHERE k % 5 = 0`);
    await large.query(
      `INSERT INTO big (id, grp, v) SELECT g, 'c5', 'c5 row ' || g FROM generate_series(404001, 408000) g`,
    );
    await waitFor('the server to give up applying it early', () => logged(GAVE_UP) > gaveUp);
    expect(await streamApplyBackend(pair)).toEqual([]);
    expect(await count(pair.replicaUrl, `big WHERE grp = 'c5'`)).toBe(0);
    await large.query('COMMIT');
  } finally {
    await large.end();
  }
  await waitUntilEqual(pair.primaryUrl, pair.replicaUrl, 30_000);
  expect(await count(pair.replicaUrl, `big WHERE grp = 'c5'`)).toBe(8000);
  expect(await count(pair.replicaUrl, `fullrow WHERE v LIKE '% c5'`)).toBe(40);
  expect(await count(pair.replicaUrl, 'fullrow')).toBe(80);
  expect(logged(APPLIED_FROM_SPOOL)).toBe(fromSpool + 1);
  expect(logged(APPLIED_WHILE_STREAMING)).toBe(applied);
  const reason = pair.serverLog.filter((e) => e.message === GAVE_UP).at(-1)?.reason;
  expect(reason).toBe('table public.fullrow has no usable key');
});

it('falls back to the spool when the replica connection applying a streamed transaction dies in its middle', async () => {
  const [fromSpool, gaveUp] = [logged(APPLIED_FROM_SPOOL), logged(GAVE_UP)];
  const large = await begin(pair.primaryUrl);
  try {
    await firstPartApplying(large, 'c6', 500001);
    await query(
      pair.replicaUrl,
      `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'pgferry-stream-apply'`,
    );
    await large.query(`UPDATE big SET v = v || ' updated' WHERE grp = 'c6' AND id % 3 = 0`);
    await large.query(
      `INSERT INTO big (id, grp, v) SELECT g, 'c6', 'c6 row ' || g FROM generate_series(504001, 508000) g`,
    );
    // (the server notices at its next round trip on that connection: at the latest, the commit)
    await large.query('COMMIT');
  } finally {
    await large.end();
  }
  await waitUntilEqual(pair.primaryUrl, pair.replicaUrl, 30_000);
  expect(logged(GAVE_UP)).toBe(gaveUp + 1);
  expect(await count(pair.replicaUrl, `big WHERE grp = 'c6'`)).toBe(8000);
  expect(await count(pair.replicaUrl, `big WHERE grp = 'c6' AND v LIKE '% updated'`)).toBe(1334);
  expect(logged(APPLIED_FROM_SPOOL)).toBe(fromSpool + 1);
  // the source's own apply connection was not touched
  expect(pair.server.sourceStatus().find((x) => x.source === NAME)?.connected).toBe(true);
});

it('gives up applying early when a replica session holds a row it must change, and applies from the spool once the row is free', async () => {
  await query(pair.primaryUrl, `INSERT INTO big (id, grp, v) VALUES (600000, 'c7', 'locked on the replica')`);
  await waitFor(
    'the row to reach the replica',
    async () => (await count(pair.replicaUrl, `big WHERE id = 600000`)) === 1,
  );
  const [fromSpool, gaveUp] = [logged(APPLIED_FROM_SPOOL), logged(GAVE_UP)];
  const holder = await begin(pair.replicaUrl);
  try {
    await holder.query('SELECT * FROM big WHERE id = 600000 FOR UPDATE');
    const large = await begin(pair.primaryUrl);
    try {
      await large.query(
        `INSERT INTO big (id, grp, v) SELECT g, 'c7', 'c7 row ' || g FROM generate_series(600001, 604000) g`,
      );
      await large.query(`UPDATE big SET v = 'changed by c7' WHERE id = 600000`);
      await large.query('COMMIT');
    } finally {
      await large.end();
    }
    // the early path waits lock_timeout, gives up; the spool's replay then waits for the row like any apply
    await waitFor('the server to give up applying it early', () => logged(GAVE_UP) > gaveUp, 20_000);
    expect(pair.serverLog.filter((e) => e.message === GAVE_UP).at(-1)?.reason).toMatch(/lock timeout/);
    expect(await count(pair.replicaUrl, `big WHERE grp = 'c7'`)).toBe(1);
  } finally {
    await holder.query('ROLLBACK');
    await holder.end();
  }
  await waitUntilEqual(pair.primaryUrl, pair.replicaUrl, 30_000);
  expect(await count(pair.replicaUrl, `big WHERE grp = 'c7'`)).toBe(4001);
  expect(await count(pair.replicaUrl, `big WHERE id = 600000 AND v = 'changed by c7'`)).toBe(1);
  expect(logged(APPLIED_FROM_SPOOL)).toBe(fromSpool + 1);
});

it('gives up applying early at a schema change inside a streamed transaction, and applies it whole from the spool', async () => {
  const [applied, fromSpool, gaveUp] = logCounts();
  const large = await begin(pair.primaryUrl);
  try {
    await firstPartApplying(large, 'c8', 700001);
    await large.query('ALTER TABLE big ADD COLUMN extra text');
    await large.query(`UPDATE big SET extra = 'e' || id WHERE grp = 'c8' AND id % 2 = 0`);
    await large.query(
      `INSERT INTO big (id, grp, v, extra) SELECT g, 'c8', 'c8 row ' || g, 'new ' || g FROM generate_series(704001, 706000) g`,
    );
    await large.query('COMMIT');
  } finally {
    await large.end();
  }
  await waitUntilEqual(pair.primaryUrl, pair.replicaUrl, 30_000);
  expect(await count(pair.replicaUrl, `big WHERE grp = 'c8'`)).toBe(6000);
  expect(await count(pair.replicaUrl, `big WHERE grp = 'c8' AND extra IS NOT NULL`)).toBe(4000);
  expect(pair.serverLog.filter((e) => e.message === GAVE_UP).at(-1)?.reason).toBe(
    'the transaction changes the schema',
  );
  expect(logged(GAVE_UP)).toBe(gaveUp + 1);
  expect(logged(APPLIED_FROM_SPOOL)).toBe(fromSpool + 1);
  expect(logged(APPLIED_WHILE_STREAMING)).toBe(applied);
});

it('neither loses nor doubles a streamed transaction when the agent restarts in its middle', async () => {
  const before = await slotStats(pair, NAME);
  const large = await begin(pair.primaryUrl);
  let agent2: Agent | null = null;
  const log2 = memoryLogger({ role: 'agent' });
  try {
    await large.query(
      `INSERT INTO hist (tid, delta, note) SELECT g % 10, g, 'before the restart ' || g FROM generate_series(1, 5000) g`,
    );
    await large.query(
      `INSERT INTO big (id, grp, v) SELECT g, 'c4', 'c4 row ' || g FROM generate_series(300001, 305000) g`,
    );
    await waitForSlotStats(
      pair,
      NAME,
      'the primary to stream part of the open transaction',
      (s) => s.streamBytes > before.streamBytes,
    );
    // ticks committed after the streamed part are applied: the server has received that part
    await waitUntilTablesEqual(pair, ['public.ticks']);
    expect(await count(pair.replicaUrl, `hist`)).toBe(0);

    await pair.agent.stop();
    agent2 = startAgentInProcess(agentConfigFor(primary, sourceOf(pair, NAME), pair.server.port), log2.log);
    extraAgents.push(agent2);
    await large.query(
      `INSERT INTO hist (tid, delta, note) SELECT g % 10, g, 'after the restart ' || g FROM generate_series(5001, 8000) g`,
    );
    await large.query(`UPDATE big SET v = v || ' updated' WHERE grp = 'c4' AND id % 4 = 0`);
    const a = agent2;
    await waitFor('the new agent to stream', () => a.st.phase === 'streaming', 60_000);
    await large.query('COMMIT');
  } finally {
    await large.end();
  }
  await query(pair.primaryUrl, `INSERT INTO small (v) VALUES ('after the restart')`);
  await waitUntilEqual(pair.primaryUrl, pair.replicaUrl, 30_000);
  expect(await count(pair.replicaUrl, 'hist')).toBe(8000);
  expect(await count(pair.replicaUrl, '(SELECT delta FROM hist GROUP BY delta HAVING count(*) > 1) d')).toBe(
    0,
  );
  expect(await count(pair.replicaUrl, `big WHERE grp = 'c4'`)).toBe(5000);
  // the new agent resumed the stream: no full copy hid the question
  expect(log2.entries.filter((e) => e.message === 'making a full initial copy')).toEqual([]);
  expect(log2.entries.some((e) => e.message === 'streaming changes')).toBe(true);
  expect(await tablesDiffer(pair.primaryUrl, pair.replicaUrl)).toEqual([]);
});

it('with streamLargeTransactions: false, the same transaction is sent at its commit (never streamed), same result', async () => {
  await interleavedLargeTransaction(control, CONTROL_NAME, false);
});
