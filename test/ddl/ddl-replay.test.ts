/**
 * Acceptance (issue 7, items 1 and 2): schema changes made on the primary under a write load reach the
 * replica at their place in the stream — CREATE TABLE + inserts, ADD COLUMN with a default + updates using
 * it, ALTER COLUMN TYPE, CREATE INDEX (also CONCURRENTLY), RENAME, DROP TABLE — and a daily partition
 * rotation (create tomorrow's partition, detach and drop the oldest) under inserts.
 */
import { SCHEMA_HASH_SQL } from '../../shared/schema-hash';
import { query, waitFor, withClient } from '../harness/db';
import { tablesDiffer, waitUntilEqual } from '../support/compare';
import { type Pair, startPair } from '../support/pair';

let pair: Pair;
let primaryUrl: string;
let replicaUrl: string;

beforeAll(async () => {
  pair = await startPair({
    name: 'ddl',
    seed: async (url) => {
      await query(
        url,
        `CREATE TABLE base (id serial PRIMARY KEY, v int);
     CREATE TABLE events (id bigint GENERATED ALWAYS AS IDENTITY, day date NOT NULL, v text,
                          doubled int GENERATED ALWAYS AS (length(v) * 2) STORED, PRIMARY KEY (id, day)) PARTITION BY RANGE (day);
     CREATE TABLE events_d1 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2026-01-02');
     CREATE TABLE events_d2 PARTITION OF events FOR VALUES FROM ('2026-01-02') TO ('2026-01-03');
     INSERT INTO events (day, v) SELECT '2026-01-01'::date + (g % 2), 'e' || g FROM generate_series(1, 200) g;`,
      );
    },
  });
  ({ primaryUrl, replicaUrl } = pair);
  expect(pair.agent.st.ddlMode).toBe('capture');
});

afterAll(async () => {
  await pair?.stop();
});

/** a steady write load on `base` while the test changes the schema */
function writeLoad(): { stop: () => Promise<number> } {
  let on = true;
  let n = 0;
  const done = withClient(primaryUrl, async (c) => {
    while (on && n < 5000) {
      n++;
      await c.query('INSERT INTO base (v) VALUES ($1)', [n]);
    }
  });
  return {
    stop: async () => {
      on = false;
      await done;
      return n;
    },
  };
}

const schemaHash = async (url: string) => (await query<{ hash: string }>(url, SCHEMA_HASH_SQL))[0].hash;

async function expectEqual(): Promise<void> {
  await waitUntilEqual(primaryUrl, replicaUrl, 20_000);
  await waitFor(
    'equal schema hashes',
    async () => (await schemaHash(replicaUrl)) === (await schemaHash(primaryUrl)),
    10_000,
  );
}

it('replays CREATE, ADD COLUMN with default, ALTER TYPE, CREATE INDEX, RENAME and DROP under a write load', async () => {
  const load = writeLoad();
  await query(
    primaryUrl,
    `CREATE TABLE fresh (id int PRIMARY KEY, note text); INSERT INTO fresh SELECT g, 'n' || g FROM generate_series(1, 100) g`,
  );
  await expectEqual();
  await query(primaryUrl, `ALTER TABLE fresh ADD COLUMN score int NOT NULL DEFAULT 7`);
  await query(primaryUrl, `UPDATE fresh SET score = score + id WHERE id <= 50`);
  await expectEqual();
  await query(primaryUrl, `ALTER TABLE fresh ALTER COLUMN score TYPE bigint`);
  await query(primaryUrl, `INSERT INTO fresh VALUES (1000, 'big', 9000000000)`);
  await query(primaryUrl, `CREATE INDEX fresh_note ON fresh (note)`);
  await query(primaryUrl, `CREATE INDEX CONCURRENTLY base_v ON base (v)`);
  await expectEqual();
  const idx = await query(
    replicaUrl,
    `SELECT indexname FROM pg_indexes WHERE indexname IN ('fresh_note', 'base_v') ORDER BY 1`,
  );
  expect(idx).toEqual([{ indexname: 'base_v' }, { indexname: 'fresh_note' }]);
  await query(
    primaryUrl,
    `ALTER TABLE fresh RENAME TO renamed; ALTER TABLE renamed RENAME COLUMN note TO remark`,
  );
  await query(primaryUrl, `INSERT INTO renamed (id, remark, score) VALUES (2000, 'after rename', 1)`);
  await expectEqual();
  await query(primaryUrl, `DROP TABLE renamed`);
  const written = await load.stop();
  expect(written).toBeGreaterThan(0);
  await expectEqual();
  const gone = await query(replicaUrl, `SELECT 1 FROM pg_tables WHERE tablename IN ('fresh', 'renamed')`);
  expect(gone).toEqual([]);
});

it('follows a daily partition rotation under inserts (identity and generated columns included)', async () => {
  let on = true;
  let n = 0;
  const inserts = withClient(primaryUrl, async (c) => {
    while (on && n < 3000) {
      n++;
      await c.query(`INSERT INTO events (day, v) VALUES ('2026-01-02', $1)`, [`x${n}`]);
    }
  });
  await query(
    primaryUrl,
    `CREATE TABLE events_d3 PARTITION OF events FOR VALUES FROM ('2026-01-03') TO ('2026-01-04')`,
  );
  await query(
    primaryUrl,
    `INSERT INTO events (day, v) SELECT '2026-01-03', 'tomorrow' || g FROM generate_series(1, 50) g`,
  );
  await query(primaryUrl, `ALTER TABLE events DETACH PARTITION events_d1`);
  await query(primaryUrl, `DROP TABLE events_d1`);
  on = false;
  await inserts;
  await expectEqual();
  const parts = await query(
    replicaUrl,
    `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE c.relkind = 'r' ORDER BY 1`,
  );
  expect(parts).toEqual([{ relname: 'events_d2' }, { relname: 'events_d3' }]);
  const gen = `SELECT id, v, doubled FROM events ORDER BY id DESC LIMIT 3`;
  expect(await query(replicaUrl, gen)).toEqual(await query(primaryUrl, gen));
  expect(await tablesDiffer(primaryUrl, replicaUrl)).toEqual([]);
});
