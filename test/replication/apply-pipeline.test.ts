/**
 * The applier's pipelined round trips against a real replica database: named statements bound with the raw
 * text values, COPY inside a batch, and the error path — a row that fails in the middle of a batch leaves
 * nothing of its group committed, says which statement failed, and the connection applies again after abort.
 */
import type { Client } from 'pg';
import { Applier } from '../../backup-server/replica/applier';
import { connectReplica } from '../../backup-server/replica/database';
import { migrateMetadata } from '../../backup-server/replica/metadata';
import { Pipeline } from '../../backup-server/replica/pipeline';
import { PipelineBatch } from '../../backup-server/replica/pipeline-batch';
import { isPgferryError, type PgferryError } from '../../shared/errors';
import { formatLsn, type Lsn, lsnFromBigInt, parseLsn } from '../../shared/lsn';
import type { Change, RelationInfo, Value } from '../../shared/protocol/messages';
import { closeQuietly } from '../../shared/pg-close';
import { createDatabase, dropDatabase, sharedClusters, uniqueName, waitFor } from '../harness/db';

const { backup } = sharedClusters();
const dbName = uniqueName('apply_pipeline');
let client: Client;
let check: Client;

const ITEMS: RelationInfo = {
  relid: 501,
  schema: 'public',
  name: 'items',
  replicaIdentity: 'default',
  columns: [
    { name: 'id', typeOid: 23, key: true },
    { name: 'v', typeOid: 25, key: false },
    { name: 'n', typeOid: 23, key: false },
  ],
};

let nextLsn = lsnFromBigInt(0x1000n);
const after = (l: Lsn, n: bigint): Lsn => lsnFromBigInt(l + n);
/** one source transaction: its changes between Begin and Commit, at increasing LSNs */
function txn(...changes: Change[]): Change[] {
  nextLsn = after(nextLsn, 0x100n);
  return [
    { k: 'B', commitLsn: formatLsn(nextLsn), xid: Number(nextLsn) },
    ...changes,
    { k: 'C', endLsn: formatLsn(after(nextLsn, 1n)), commitTime: '1795312597650953' },
  ];
}
const ins = (...v: Value[]): Change => ({ k: 'I', r: ITEMS.relid, v });

async function rows(): Promise<{ id: number; v: string | null; n: number | null }[]> {
  return (await check.query('SELECT id, v, n FROM items ORDER BY id')).rows;
}
async function appliedLsn(): Promise<string> {
  return (await check.query('SELECT applied_lsn::text AS l FROM pgferry.state')).rows[0].l;
}

async function newApplier(acks: Lsn[], maxBatchBytes?: number): Promise<Applier> {
  const start = parseLsn(await appliedLsn());
  const a = new Applier(
    client,
    start,
    { maxGroupTransactions: 1000, maxGroupDelayMs: 5, asyncCommit: true, maxBatchBytes },
    (l) => acks.push(l),
  );
  await a.setRelation(ITEMS);
  return a;
}

beforeAll(async () => {
  const url = await createDatabase(backup, dbName);
  client = await connectReplica(url, 'pgferry-apply-test');
  check = await connectReplica(url, 'pgferry-apply-check');
  await migrateMetadata(client);
  await client.query(`CREATE TABLE items (id int PRIMARY KEY, v text, n int)`);
  await client.query(
    `INSERT INTO pgferry.state (id, source, system_identifier, sync_id, sync_completed_at, applied_lsn)
     VALUES (1, 'test', '1', 'sync', now(), $1)`,
    [formatLsn(nextLsn)],
  );
  await client.query('SET synchronous_commit TO off');
});

afterAll(async () => {
  await closeQuietly(client);
  await closeQuietly(check);
  await dropDatabase(backup, dbName);
});

it('applies keyed changes and a COPY run in one round trip, values bound exactly as sent', async () => {
  const acks: Lsn[] = [];
  const a = await newApplier(acks);
  const odd = `it's "quoted" \\ with\ttab, newline\n, ünï 🚀`;
  const copyRun = Array.from({ length: 60 }, (_, i) => ins(String(100 + i), i % 7 ? `row ${i}` : odd, null));
  await a.apply([
    ...txn(ins('1', odd, '10'), ins('2', null, null), ins('3', '', '30')),
    ...txn({ k: 'U', r: ITEMS.relid, v: ['1', 'changed', '11'] }, { k: 'D', r: ITEMS.relid, old: ['2'] }),
    // the key changed: the old key locates the row
    ...txn({ k: 'U', r: ITEMS.relid, v: ['4', odd, '40'], old: ['3', null, null] }),
    ...txn(...copyRun),
  ]);
  await a.commitGroup();
  const got = await rows();
  expect(got.slice(0, 2)).toEqual([
    { id: 1, v: 'changed', n: 11 },
    { id: 4, v: odd, n: 40 },
  ]);
  expect(got.length).toBe(62);
  expect(got.find((r) => r.id === 107)).toEqual({ id: 107, v: odd, n: null });
  expect(await appliedLsn()).toBe(formatLsn(after(nextLsn, 1n)));
  const changed = await check.query(
    `SELECT table_name, last_change_lsn::text AS l FROM pgferry.table_changes`,
  );
  expect(changed.rows).toEqual([{ table_name: 'items', l: formatLsn(after(nextLsn, 1n)) }]);
  // reported durable once the replica's WAL is flushed past the commit
  await waitFor('the group acknowledged', () => acks.at(-1) === after(nextLsn, 1n), 10_000);
  a.close();
});

it('a row failing in the middle of a batch commits nothing of its group and names the statement', async () => {
  const before = await rows();
  const lsnBefore = await appliedLsn();
  const a = await newApplier([]);
  await a.apply([
    ...txn(ins('1000', 'first', '1')),
    ...txn({ k: 'U', r: ITEMS.relid, v: ['1', 'must not stay', '12'] }),
    ...txn(ins('1001', 'bad', 'not a number'), ins('1002', 'after', '2')),
  ]);
  const err = await a.commitGroup().catch((e: unknown) => e);
  expect(isPgferryError(err, 'APPLY_FAILED')).toBe(true);
  const msg = (err as PgferryError).message;
  expect(msg).toMatch(/^applying changes on the replica failed: invalid input syntax for type integer/);
  expect(msg).toMatch(/statement 4 of \d+ in the batch: INSERT INTO "public"."items"/);
  await a.abort();
  expect(await rows()).toEqual(before);
  expect(await appliedLsn()).toBe(lsnBefore);

  // the same connection applies again (statements parsed afresh after the abort)
  const again = await newApplier([]);
  await again.apply(
    txn(ins('1000', 'first', '1'), { k: 'U', r: ITEMS.relid, v: ['1', 'now it stays', '13'] }),
  );
  await again.commitGroup();
  expect((await rows()).filter((r) => r.id === 1 || r.id === 1000)).toEqual([
    { id: 1, v: 'now it stays', n: 13 },
    { id: 1000, v: 'first', n: 1 },
  ]);
  again.close();
});

it('a failure in an earlier round trip of a large group surfaces later and still commits nothing', async () => {
  const before = await rows();
  const lsnBefore = await appliedLsn();
  // tiny batches: the group spans many round trips; the duplicate key fails in one of the first
  const a = await newApplier([], 200);
  const err = await a
    .apply([
      ...txn(ins('2000', 'a', '1'), ins('2000', 'duplicate', '2')),
      ...Array.from({ length: 20 }, (_, i) => txn(ins(String(2001 + i), 'later', null))).flat(),
    ])
    .then(() => a.commitGroup())
    .catch((e: unknown) => e);
  expect(isPgferryError(err, 'APPLY_FAILED')).toBe(true);
  expect((err as Error).message).toMatch(/duplicate key value violates unique constraint "items_pkey"/);
  await a.abort();
  expect(await rows()).toEqual(before);
  expect(await appliedLsn()).toBe(lsnBefore);
});

it('a bad row inside a COPY run fails the batch as inserts and commits nothing', async () => {
  const before = await rows();
  const a = await newApplier([]);
  const run = Array.from({ length: 80 }, (_, i) => ins(String(3000 + i), 'copy', i === 41 ? 'x' : String(i)));
  await a.apply(txn(...run));
  const err = await a.commitGroup().catch((e: unknown) => e);
  expect(isPgferryError(err, 'APPLY_FAILED')).toBe(true);
  expect((err as Error).message).toMatch(
    /^applying inserts on the replica failed: invalid input syntax for type integer: "x".*COPY "public"."items"/,
  );
  await a.abort();
  expect(await rows()).toEqual(before);
});

it('a pipeline returns the rows of its last row-returning statement and reports a broken connection apart', async () => {
  const parsed = new Set<string>();
  const b = new PipelineBatch(parsed);
  b.executeText('SELECT 1');
  b.execute({ name: 'pgf_test_two', text: 'SELECT $1::int + 1, NULL::text' }, ['41']);
  b.executeText('SET LOCAL work_mem = 4096');
  const p = new Pipeline(b);
  client.query(p);
  expect(await p.done).toEqual({ rows: [['42', null]] });

  const other = await connectReplica(backup.url(dbName), 'pgferry-apply-test-broken');
  const pid = (await other.query('SELECT pg_backend_pid() AS pid')).rows[0].pid;
  const killed = new PipelineBatch(new Set());
  killed.executeText('SELECT pg_sleep(5)');
  const slow = new Pipeline(killed);
  other.query(slow);
  // observed before the kill: the rejection may arrive before pg_terminate_backend's own answer does
  const outcome = slow.done.catch((e: unknown) => e);
  await waitFor('the query to run', async () => {
    const r = await check.query(`SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND state = 'active'`, [pid]);
    return (r.rowCount ?? 0) > 0;
  });
  await check.query('SELECT pg_terminate_backend($1)', [pid]);
  const err = await outcome;
  expect(isPgferryError(err, 'REPLICA_UNAVAILABLE')).toBe(true);
  await closeQuietly(other);
});
