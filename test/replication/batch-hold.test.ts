/**
 * The agent's batch hold (agent.yaml `maxBatchDelayMs`): transactions committed on the primary within the
 * hold travel in one batch and become visible on the replica together, in one replica transaction (what
 * saves the backup side's CPU under many small transactions); a lone commit is still sent when the hold
 * ends, with nothing after it to push it out.
 */
import { Client } from 'pg';
import { query } from '../harness/db';
import { type Pair, startPair } from '../support/pair';

const HOLD_MS = 1000;
let pair: Pair;

beforeAll(async () => {
  pair = await startPair({
    name: 'hold',
    seed: (url) =>
      query(url, 'CREATE TABLE ticks (id int PRIMARY KEY, at timestamptz DEFAULT clock_timestamp())'),
    agentExtra: { maxBatchDelayMs: HOLD_MS },
  });
});

afterAll(async () => {
  await pair?.stop();
});

/** Polls the replica's row count every few ms until it reaches `until`, recording every count seen. */
async function watchCount(until: number, timeoutMs: number): Promise<{ seen: Set<number>; ms: number }> {
  const c = new Client({ connectionString: pair.replicaUrl });
  await c.connect();
  const seen = new Set<number>();
  const started = Date.now();
  try {
    for (;;) {
      const n = Number((await c.query('SELECT count(*) AS n FROM ticks')).rows[0].n);
      seen.add(n);
      if (n >= until) return { seen, ms: Date.now() - started };
      if (Date.now() - started > timeoutMs)
        throw new Error(`replica has ${n} of ${until} rows after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 2));
    }
  } finally {
    await c.end();
  }
}

it('applies transactions committed within the hold together, and a lone commit once the hold ends', async () => {
  // five transactions, 20 ms apart: all well inside one 1 s hold
  const watching = watchCount(5, 10_000);
  const writer = new Client({ connectionString: pair.primaryUrl });
  await writer.connect();
  try {
    for (let i = 1; i <= 5; i++) {
      await writer.query('INSERT INTO ticks (id) VALUES ($1)', [i]);
      await new Promise((r) => setTimeout(r, 20));
    }
    const first = await watching;
    // never 1..4 rows: the five arrived in one batch and were committed in one replica transaction
    expect([...first.seen].sort()).toEqual([0, 5]);

    // a lone commit with nothing after it: the hold's timer sends it
    const lone = watchCount(6, 10_000);
    const t0 = Date.now();
    await writer.query('INSERT INTO ticks (id) VALUES (6)');
    await lone;
    expect(Date.now() - t0).toBeLessThan(HOLD_MS + 5_000);
  } finally {
    await writer.end();
  }
});
