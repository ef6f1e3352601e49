/**
 * The spool of transactions streamed while in progress: records come back in order, a subtransaction's
 * rollback cuts exactly its records and those of subtransactions begun after it, a whole rollback or a
 * replay removes the file, a reset forgets everything.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { type SpooledMessage, TransactionSpool } from '../../backup-server/replica/transaction-spool';
import type { Frame } from '../../shared/protocol/frame';
import type { RelationInfo } from '../../shared/protocol/messages';

const TOP = 4000000001;
const RELATION: RelationInfo = {
  relid: 16384,
  schema: 'public',
  name: 'items',
  replicaIdentity: 'default',
  columns: [{ name: 'id', typeOid: 23, key: true }],
};

/** a batch of `label.length` changes whose body starts with `label` */
const changes = (label: string, size = 16) => ({
  count: label.length,
  body: Buffer.concat([Buffer.from(label), Buffer.alloc(size, 0x2e)]),
});
const LAYOUT = 'layout';

/** appends what the link would have brought: a streamChanges frame, or a streamRelation one */
function put(
  spool: TransactionSpool,
  xid: number,
  subxid: number,
  r: ReturnType<typeof changes> | typeof LAYOUT,
): Promise<void> {
  if (r === LAYOUT) return spool.append({ tag: 'streamRelation', xid, subxid, relation: RELATION }, null);
  return spool.append({ tag: 'streamChanges', xid, subxid, count: r.count }, r.body);
}

async function replayed(spool: TransactionSpool, xid: number): Promise<string[]> {
  const out: string[] = [];
  for await (const r of spool.replay(xid))
    out.push(
      r.header.tag === 'streamRelation'
        ? `R:${r.header.relation.name}`
        : (r.body?.toString('latin1') ?? '').replace(/\.+$/, ''),
    );
  return out;
}

describe('transaction spool', () => {
  let dir: string;
  let spool: TransactionSpool;

  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgferry-spool-'));
    spool = new TransactionSpool(path.join(dir, 'spool', 'src'));
    await spool.reset();
  });

  afterEach(async () => {
    await spool.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('replays frames in arrival order, relations included, then removes the file', async () => {
    await put(spool, TOP, TOP, changes('a'));
    await put(spool, TOP, TOP, LAYOUT);
    await put(spool, TOP, TOP, changes('b'));
    await put(spool, TOP + 1, TOP + 1, changes('other'));
    expect(spool.size).toBe(2);
    expect(fs.readdirSync(spool.dir).sort()).toEqual([`xid-${TOP + 1}`, `xid-${TOP}`].sort());
    expect(await replayed(spool, TOP)).toEqual(['a', 'R:items', 'b']);
    expect(fs.readdirSync(spool.dir)).toEqual([`xid-${TOP + 1}`]);
    expect(await replayed(spool, TOP + 1)).toEqual(['other']);
    expect(await replayed(spool, 12345)).toEqual([]);
  });

  it('keeps the counts, and frames larger than its read buffer', async () => {
    const big = changes('big', 3 * 1024 * 1024);
    await put(spool, TOP, TOP, changes('x', 700 * 1024));
    await put(spool, TOP, TOP, big);
    await put(spool, TOP, TOP, changes('y'));
    const got: Frame<SpooledMessage>[] = [];
    for await (const r of spool.replay(TOP)) got.push(r);
    expect(
      got.map((r) => (r.header.tag === 'streamChanges' ? [r.header.count, r.body?.length] : null)),
    ).toEqual([
      [1, 700 * 1024 + 1],
      [3, 3 * 1024 * 1024 + 3],
      [1, 17],
    ]);
    expect(got[1].body?.equals(big.body)).toBe(true);
  });

  it("cuts a rolled-back subtransaction's frames and those begun after it, nothing before", async () => {
    const [s1, s2, s3] = [TOP + 10, TOP + 11, TOP + 12];
    await put(spool, TOP, TOP, changes('top1'));
    await put(spool, TOP, s1, changes('s1-a'));
    await put(spool, TOP, s1, changes('s1-b'));
    await put(spool, TOP, TOP, changes('top2')); // s1 released: the parent goes on
    await put(spool, TOP, s2, changes('s2'));
    await put(spool, TOP, s3, changes('s3')); // begun inside s2
    await spool.abort(TOP, s2); // ROLLBACK TO s2: s2 and s3 go
    await put(spool, TOP, TOP, changes('top3'));
    await spool.abort(TOP, TOP + 99); // a subtransaction that wrote nothing: nothing to cut
    await put(spool, TOP, s3, changes('s3-again')); // s3 was forgotten: it starts anew here
    await spool.abort(TOP, s3);
    expect(await replayed(spool, TOP)).toEqual(['top1', 's1-a', 's1-b', 'top2', 'top3']);
  });

  it('forgets a transaction rolled back whole, and every transaction at a reset', async () => {
    await put(spool, TOP, TOP, changes('gone'));
    await spool.abort(TOP, TOP);
    expect(spool.size).toBe(0);
    expect(fs.readdirSync(spool.dir)).toEqual([]);
    expect(await replayed(spool, TOP)).toEqual([]);
    await put(spool, TOP + 1, TOP + 1, changes('left over'));
    await spool.close(); // a disconnect: files stay until the next reset
    expect(fs.readdirSync(spool.dir)).toEqual([`xid-${TOP + 1}`]);
    await spool.reset();
    expect(fs.readdirSync(spool.dir)).toEqual([]);
    expect(spool.bytes).toBe(0);
  });
});
