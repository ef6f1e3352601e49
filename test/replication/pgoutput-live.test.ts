/**
 * The pgoutput decoder on real messages: changes made on the test primary are read back from a logical
 * slot as the bytes the walsender sends (pg_logical_slot_peek_binary_changes, pgoutput protocol 1) and
 * decoded. Covers exotic types as exact text, a TOASTed value over 1 MB, unchanged TOAST on update, every
 * replica identity, a table without a key, dropped and generated columns, messages and TRUNCATE.
 */
import { PgoutputDecoder, type StreamEvent } from '../../agent/pgoutput-decoder';
import { parseLsn } from '../../shared/lsn';
import type { Change, RelationInfo } from '../../shared/protocol/messages';
import { createDatabase, dropDatabase, query, sharedClusters, uniqueName, withClient } from '../harness/db';

const { primary } = sharedClusters();
const dbName = uniqueName('pgoutput_live');
let url: string;
let events: StreamEvent[];

const BIG = "repeat(md5('x'), 40000)"; // 1,280,000 characters, stored out of line (TOAST)

beforeAll(async () => {
  url = await createDatabase(primary, dbName);
  await withClient(url, async (c) => {
    await c.query(`
      CREATE TYPE mood AS ENUM ('sad', 'happy');
      CREATE TABLE kinds (id bigserial PRIMARY KEY, i8 int8, num numeric, ts timestamptz, b bytea, j jsonb, arr int[],
                          tarr text[], t text, big text, m mood, u text, iv interval, f8 float8);
      CREATE TABLE full_t (id int, name text, payload text);
      ALTER TABLE full_t REPLICA IDENTITY FULL;
      CREATE TABLE idx_t (a int NOT NULL, b int NOT NULL, c text);
      CREATE UNIQUE INDEX idx_t_ab ON idx_t (a, b);
      ALTER TABLE idx_t REPLICA IDENTITY USING INDEX idx_t_ab;
      CREATE TABLE nothing_t (x int);
      ALTER TABLE nothing_t REPLICA IDENTITY NOTHING;
      CREATE TABLE dropped (id int PRIMARY KEY, gone int, keep text, gen int GENERATED ALWAYS AS (id * 2) STORED);
      ALTER TABLE dropped DROP COLUMN gone;
      CREATE PUBLICATION live_pub FOR ALL TABLES;`);
    await c.query(`SELECT pg_create_logical_replication_slot('${dbName}', 'pgoutput')`);
    await c.query(`INSERT INTO kinds (i8, num, ts, b, j, arr, tarr, t, big, m, u, iv, f8) VALUES
      (9223372036854775807, 123456789012345678901234567890.123456789, '2026-11-22 03:15:00.123456+00', '\\x00ff10',
       '{"k": [1, 2, {"z": null}]}', '{1,2,3}', '{"a b","c,d",NULL}', '', NULL, 'happy', 'émoji 🚀 ü', '1 day 00:00:01.5', 0.1),
      (-1, 'NaN', '1999-12-31 23:59:59.999999+05', '\\x', '[]', '{}', '{}', NULL, ${BIG}, 'sad', 'ab', NULL, '-Infinity')`);
    await c.query(`UPDATE kinds SET t = 'touched' WHERE id = 2`);
    await c.query(`UPDATE kinds SET id = 20 WHERE id = 2`);
    await c.query(`DELETE FROM kinds WHERE id = 1`);
    await c.query(`INSERT INTO full_t VALUES (1, 'one', ${BIG}), (2, NULL, 'p')`);
    await c.query(`UPDATE full_t SET name = 'uno' WHERE id = 1`);
    await c.query(`DELETE FROM full_t WHERE id = 1`);
    await c.query(`INSERT INTO idx_t VALUES (1, 2, 'c')`);
    await c.query(`UPDATE idx_t SET c = 'cc'`);
    await c.query(`UPDATE idx_t SET b = 3`);
    await c.query(`DELETE FROM idx_t`);
    await c.query(`INSERT INTO nothing_t VALUES (1)`);
    await c.query(`INSERT INTO dropped (id, keep) VALUES (5, 'k')`);
    await c.query(
      `BEGIN; SELECT pg_logical_emit_message(true, 'pfx', 'in-tx'); INSERT INTO idx_t VALUES (7, 8, NULL); COMMIT`,
    );
    await c.query(`SELECT pg_logical_emit_message(false, 'pfx', 'outside')`);
    await c.query(`TRUNCATE idx_t, full_t RESTART IDENTITY CASCADE`);
  });
  const rows = await query<{ data: Buffer }>(
    url,
    `SELECT data FROM pg_logical_slot_peek_binary_changes($1, NULL, NULL,
       'proto_version', '1', 'publication_names', 'live_pub', 'messages', 'true')`,
    [dbName],
  );
  const d = new PgoutputDecoder();
  events = [];
  for (const r of rows) {
    const ev = d.decode(r.data);
    if (ev) events.push(ev);
  }
});

afterAll(async () => {
  await dropDatabase(primary, dbName);
});

const relations = () =>
  events.filter((e) => e.k === 'R').map((e) => (e as { relation: RelationInfo }).relation);
const relid = (name: string) => relations().find((r) => r.name === name)!.relid;
const changesOf = (name: string) =>
  events.filter((e): e is Change => e.k !== 'R' && 'r' in e && e.r === relid(name));

it('decodes every transaction as Begin … Commit with increasing LSNs and microsecond commit times', () => {
  const txns = events.filter((e) => e.k === 'B').length;
  expect(txns).toBe(events.filter((e) => e.k === 'C').length);
  expect(txns).toBe(15);
  const ends = events.filter((e) => e.k === 'C') as Extract<Change, { k: 'C' }>[];
  let previous = 0n;
  for (const c of ends) {
    expect(c.endLsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
    expect(parseLsn(c.endLsn)).toBeGreaterThan(previous);
    previous = parseLsn(c.endLsn);
    // within a minute of now, in microseconds since 1970
    expect(Math.abs(Number(c.commitTime) / 1000 - Date.now())).toBeLessThan(60_000);
  }
});

it('describes each table: identity, published columns only (no dropped or generated ones), key flags', () => {
  const byName = Object.fromEntries(relations().map((r) => [r.name, r]));
  expect(byName.kinds.replicaIdentity).toBe('default');
  expect(byName.kinds.columns.filter((c) => c.key).map((c) => c.name)).toEqual(['id']);
  expect(byName.full_t.replicaIdentity).toBe('full');
  expect(byName.idx_t).toMatchObject({
    replicaIdentity: 'index',
    columns: [
      { name: 'a', typeOid: 23, key: true },
      { name: 'b', typeOid: 23, key: true },
      { name: 'c', typeOid: 25, key: false },
    ],
  });
  expect(byName.nothing_t.replicaIdentity).toBe('nothing');
  expect(byName.dropped.columns.map((c) => c.name)).toEqual(['id', 'keep']);
});

it('keeps exotic values as PostgreSQL prints them, and a TOASTed value over 1 MB whole', async () => {
  const [ins1, ins2] = changesOf('kinds');
  const expected = await query<Record<string, string | null>>(
    url,
    `SELECT '1' AS id, '9223372036854775807'::int8::text AS i8, (123456789012345678901234567890.123456789)::numeric::text AS num,
            '2026-11-22 03:15:00.123456+00'::timestamptz::text AS ts, '\\x00ff10'::bytea::text AS b,
            '{"k": [1, 2, {"z": null}]}'::jsonb::text AS j, '{"a b","c,d",NULL}'::text[]::text AS tarr,
            '1 day 00:00:01.5'::interval::text AS iv, 0.1::float8::text AS f8,
            '1999-12-31 23:59:59.999999+05'::timestamptz::text AS ts2`,
  );
  const e = expected[0];
  expect(ins1).toEqual({
    k: 'I',
    r: relid('kinds'),
    v: [e.id, e.i8, e.num, e.ts, e.b, e.j, '{1,2,3}', e.tarr, '', null, 'happy', 'émoji 🚀 ü', e.iv, e.f8],
  });
  const v2 = (ins2 as Extract<Change, { k: 'I' }>).v;
  expect(v2.slice(0, 9)).toEqual(['2', '-1', 'NaN', e.ts2, '\\x', '[]', '{}', '{}', null]);
  expect(v2.slice(10)).toEqual(['sad', 'ab', null, '-Infinity']);
  const big = v2[9] ?? '';
  expect(big.length).toBe(1_280_000);
  expect(big.slice(0, 32)).toBe('9dd4e461268c8034f5c8564e155c67a6'); // md5('x')
});

it('reports the unchanged TOAST column of an update by index, and the old key when the key changed', () => {
  const [, , touched, rekeyed, deleted] = changesOf('kinds');
  expect(touched).toMatchObject({ k: 'U', toast: [9] });
  expect((touched as Extract<Change, { k: 'U' }>).v[8]).toBe('touched');
  expect((touched as Extract<Change, { k: 'U' }>).v[9]).toBeNull();
  expect(touched).not.toHaveProperty('old');
  expect(rekeyed).toMatchObject({ k: 'U', toast: [9], old: ['2', ...Array(13).fill(null)] });
  expect((rekeyed as Extract<Change, { k: 'U' }>).v[0]).toBe('20');
  expect(deleted).toEqual({ k: 'D', r: relid('kinds'), old: ['1', ...Array(13).fill(null)] });
});

it('sends whole old rows for identity full, with TOASTed values filled in', () => {
  const [, , upd, del] = changesOf('full_t');
  const u = upd as Extract<Change, { k: 'U' }>;
  expect(u.v.slice(0, 2)).toEqual(['1', 'uno']);
  expect(u.v[2]?.length).toBe(1_280_000);
  expect(u.toast).toBeUndefined();
  expect(u.old?.slice(0, 2)).toEqual(['1', 'one']);
  expect(del).toMatchObject({ k: 'D', old: ['1', 'uno', u.v[2]] });
});

it('handles identity index, identity nothing, a table without a key, messages and TRUNCATE', () => {
  expect(changesOf('idx_t')).toEqual([
    { k: 'I', r: relid('idx_t'), v: ['1', '2', 'c'] },
    { k: 'U', r: relid('idx_t'), v: ['1', '2', 'cc'] },
    { k: 'U', r: relid('idx_t'), v: ['1', '3', 'cc'], old: ['1', '2', null] },
    { k: 'D', r: relid('idx_t'), old: ['1', '3', null] },
    { k: 'I', r: relid('idx_t'), v: ['7', '8', null] },
  ]);
  expect(changesOf('nothing_t')).toEqual([{ k: 'I', r: relid('nothing_t'), v: ['1'] }]);
  expect(changesOf('dropped')).toEqual([{ k: 'I', r: relid('dropped'), v: ['5', 'k'] }]);
  const truncate = events.find((e) => e.k === 'T');
  expect(truncate).toEqual({
    k: 'T',
    rs: expect.arrayContaining([relid('idx_t'), relid('full_t')]),
    cascade: true,
    restartIdentity: true,
  });
});
