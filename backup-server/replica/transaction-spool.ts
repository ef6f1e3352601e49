/**
 * Transactions the primary streams while they still run (link protocol 3), kept on the backup server's
 * disk until they commit (then replayed into the replica as one transaction) or roll back (then dropped).
 * Memory stays bounded whatever a transaction's size; the primary's disk is spared its spill files.
 *
 * One file per top-level transaction: the `streamChanges` and `streamRelation` frames of the link as they
 * arrived (shared/protocol/frame.ts, read back with its decoder). The offset of each subtransaction's first
 * frame is remembered: rolling one back truncates the file there, since everything after it was made by
 * that subtransaction or by those begun inside it (the rule PostgreSQL's own apply worker uses for its
 * stream files).
 *
 * Nothing here needs to survive a restart: after any reconnect the primary streams every open transaction
 * again from its start, so the folder is emptied whenever the agent (re)connects.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PgferryError } from '../../shared/errors';
import { encodeFrame, type Frame, FrameDecoder } from '../../shared/protocol/frame';
import type { AgentMessage } from '../../shared/protocol/messages';

/** what is kept of a transaction in progress: its changes and the table layouts they were made with */
export type SpooledMessage = Extract<AgentMessage, { tag: 'streamChanges' | 'streamRelation' }>;

const READ_BYTES = 1024 * 1024;
/** every frame on file was taken by the link under its own size limit: no second limit when reading back */
const ANY_FRAME_BYTES = 0xffffffff;

interface OpenTransaction {
  file: string;
  fh: fs.promises.FileHandle;
  bytes: number;
  /** subtransaction → offset of its first frame */
  subxacts: Map<number, number>;
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

  async append(m: SpooledMessage, body: Buffer | null): Promise<void> {
    const t = await this.transaction(m.xid);
    if (m.subxid !== m.xid && !t.subxacts.has(m.subxid)) t.subxacts.set(m.subxid, t.bytes);
    const frame = encodeFrame(m, body);
    try {
      // at an explicit position: after a truncate the descriptor's own offset would leave a hole
      await t.fh.write(frame, 0, frame.length, t.bytes);
    } catch (e) {
      throw spoolError(e, t.file);
    }
    t.bytes += frame.length;
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
  }

  /** The frames of transaction `xid` in order (none if nothing was spooled); its file goes afterwards. */
  async *replay(xid: number): AsyncGenerator<Frame<SpooledMessage>> {
    const t = this.open.get(xid);
    if (!t) return;
    try {
      const decoder = new FrameDecoder(ANY_FRAME_BYTES);
      let read = 0;
      if (t.bytes > 0) {
        const chunks = t.fh.createReadStream({
          start: 0,
          end: t.bytes - 1,
          highWaterMark: READ_BYTES,
          autoClose: false,
        });
        for await (const chunk of chunks) {
          read += (chunk as Buffer).length;
          for (const f of decoder.push(chunk as Buffer)) yield f as Frame<SpooledMessage>;
        }
      }
      if (read < t.bytes) throw corrupt(t.file, 'it is shorter than what was written');
      if (decoder.bufferedBytes > 0) throw corrupt(t.file, 'it ends inside a frame');
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
    const t: OpenTransaction = { file, fh, bytes: 0, subxacts: new Map() };
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
