/**
 * Transactions the primary streams while they still run (link protocol 3), kept on the backup server's
 * disk until they commit (then replayed into the replica as one transaction) or roll back (then dropped).
 * Memory stays bounded whatever a transaction's size; the primary's disk is spared its spill files.
 *
 * One file per top-level transaction, records in arrival order:
 *   kind u8 (1 changes: a change-codec batch, 2 relation: JSON), count u32, length u32, payload
 * The offset of each subtransaction's first record is remembered: rolling one back truncates the file
 * there, since everything after it was made by that subtransaction or by those begun inside it (the rule
 * PostgreSQL's own apply worker uses for its stream files).
 *
 * Nothing here needs to survive a restart: after any reconnect the primary streams every open transaction
 * again from its start, so the folder is emptied whenever the agent (re)connects.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PgferryError } from '../../shared/errors';
import type { RelationInfo } from '../../shared/protocol/messages';

export type SpoolRecord =
  | { kind: 'changes'; count: number; body: Buffer }
  | { kind: 'relation'; relation: RelationInfo };

const KIND_CHANGES = 1;
const KIND_RELATION = 2;
const HEAD_BYTES = 9;
const READ_BYTES = 1024 * 1024;

interface OpenTransaction {
  file: string;
  fh: fs.promises.FileHandle;
  bytes: number;
  /** subtransaction → offset of its first record */
  subxacts: Map<number, number>;
  lastSubxid: number;
}

export class TransactionSpool {
  private readonly open = new Map<number, OpenTransaction>();

  constructor(readonly dir: string) {}

  /** transactions with something spooled */
  get size(): number {
    return this.open.size;
  }

  /** bytes spooled, all transactions together */
  get bytes(): number {
    let n = 0;
    for (const t of this.open.values()) n += t.bytes;
    return n;
  }

  /** bytes spooled for transaction `xid` */
  bytesOf(xid: number): number {
    return this.open.get(xid)?.bytes ?? 0;
  }

  /** Forgets every transaction (their files too): the agent (re)connected and streams them again. */
  async reset(): Promise<void> {
    await this.close();
    try {
      await fs.promises.rm(this.dir, { recursive: true, force: true });
      await fs.promises.mkdir(this.dir, { recursive: true });
    } catch (e) {
      throw spoolError(e, this.dir);
    }
  }

  async append(xid: number, subxid: number, record: SpoolRecord): Promise<void> {
    const t = await this.transaction(xid);
    if (subxid !== t.lastSubxid && subxid !== xid && !t.subxacts.has(subxid)) t.subxacts.set(subxid, t.bytes);
    t.lastSubxid = subxid;
    const payload =
      record.kind === 'changes' ? record.body : Buffer.from(JSON.stringify(record.relation), 'utf8');
    const head = Buffer.allocUnsafe(HEAD_BYTES);
    head[0] = record.kind === 'changes' ? KIND_CHANGES : KIND_RELATION;
    head.writeUInt32BE(record.kind === 'changes' ? record.count : 0, 1);
    head.writeUInt32BE(payload.length, 5);
    try {
      // at an explicit position: after a truncate the descriptor's own offset would leave a hole
      await t.fh.writev([head, payload], t.bytes);
    } catch (e) {
      throw spoolError(e, t.file);
    }
    t.bytes += HEAD_BYTES + payload.length;
  }

  /**
   * `subxid` = `xid`: the transaction rolled back, its file goes. Otherwise subtransaction `subxid` rolled
   * back: the file is cut where it began (nothing to cut when it wrote nothing).
   */
  async abort(xid: number, subxid: number): Promise<void> {
    const t = this.open.get(xid);
    if (!t) return;
    if (subxid === xid) {
      await this.discard(xid);
      return;
    }
    const at = t.subxacts.get(subxid);
    if (at === undefined) return;
    for (const [s, offset] of t.subxacts) if (offset >= at) t.subxacts.delete(s);
    try {
      await t.fh.truncate(at);
    } catch (e) {
      throw spoolError(e, t.file);
    }
    t.bytes = at;
    t.lastSubxid = xid;
  }

  /** The records of transaction `xid` in order (none if nothing was spooled); its file goes afterwards. */
  async *replay(xid: number): AsyncGenerator<SpoolRecord> {
    const t = this.open.get(xid);
    if (!t) return;
    try {
      let buf = Buffer.allocUnsafe(READ_BYTES);
      let have = 0;
      let at = 0;
      let pos = 0;
      while (at < t.bytes || have > 0) {
        if (have < HEAD_BYTES || have < HEAD_BYTES + buf.readUInt32BE(pos + 5)) {
          // compact, grow when one record is bigger than the buffer, then read more
          const need = have >= HEAD_BYTES ? HEAD_BYTES + buf.readUInt32BE(pos + 5) : HEAD_BYTES;
          if (at >= t.bytes) throw corrupt(t.file, 'it ends inside a record');
          const next = need > buf.length ? Buffer.allocUnsafe(need + READ_BYTES) : buf;
          buf.copy(next, 0, pos, pos + have);
          buf = next;
          pos = 0;
          const { bytesRead } = await t.fh.read(buf, have, buf.length - have, at);
          if (bytesRead === 0) throw corrupt(t.file, 'it is shorter than what was written');
          at += bytesRead;
          have += bytesRead;
          continue;
        }
        const kind = buf[pos];
        const count = buf.readUInt32BE(pos + 1);
        const len = buf.readUInt32BE(pos + 5);
        // a copy: the read buffer is reused for what follows
        const payload = Buffer.from(buf.subarray(pos + HEAD_BYTES, pos + HEAD_BYTES + len));
        pos += HEAD_BYTES + len;
        have -= HEAD_BYTES + len;
        if (kind === KIND_CHANGES) yield { kind: 'changes', count, body: payload };
        else if (kind === KIND_RELATION)
          yield { kind: 'relation', relation: JSON.parse(payload.toString('utf8')) as RelationInfo };
        else throw corrupt(t.file, `unknown record kind ${kind}`);
      }
    } finally {
      await this.discard(xid);
    }
  }

  async discard(xid: number): Promise<void> {
    const t = this.open.get(xid);
    if (!t) return;
    this.open.delete(xid);
    await t.fh.close().catch(() => undefined);
    await fs.promises.rm(t.file, { force: true }).catch(() => undefined);
  }

  /** Closes the files (kept on disk until the next reset). */
  async close(): Promise<void> {
    const all = [...this.open.values()];
    this.open.clear();
    await Promise.all(all.map((t) => t.fh.close().catch(() => undefined)));
  }

  private async transaction(xid: number): Promise<OpenTransaction> {
    const known = this.open.get(xid);
    if (known) return known;
    const file = path.join(this.dir, `xid-${xid}`);
    let fh: fs.promises.FileHandle;
    try {
      await fs.promises.mkdir(this.dir, { recursive: true });
      fh = await fs.promises.open(file, 'w+');
    } catch (e) {
      throw spoolError(e, file);
    }
    const t: OpenTransaction = { file, fh, bytes: 0, subxacts: new Map(), lastSubxid: xid };
    this.open.set(xid, t);
    return t;
  }
}

function spoolError(e: unknown, file: string): PgferryError {
  const code = (e as NodeJS.ErrnoException).code;
  const reason = e instanceof Error ? e.message : String(e);
  const what = code === 'ENOSPC' ? 'no space left on the device' : reason;
  return new PgferryError(
    'SPOOL_UNAVAILABLE',
    `cannot keep a large transaction streamed from the primary in ${file}: ${what}`,
    { cause: e },
  );
}

function corrupt(file: string, what: string): PgferryError {
  return new PgferryError(
    'SPOOL_UNAVAILABLE',
    `the spool file of a streamed transaction is damaged (${file}: ${what})`,
  );
}
