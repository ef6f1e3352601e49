/**
 * One round trip of apply work in PostgreSQL's extended query protocol, as the bytes that go on the wire:
 * named statements are Parse'd the first time a connection uses them, then every row is a Bind (text-format
 * parameters: the replicated text values as they are, null as NULL) and an Execute; one Sync ends the batch.
 * The replica parses and plans each statement shape once per connection, and nothing is quoted here.
 * COPY runs travel inside the same batch (CopyData/CopyDone follow their Execute; the backend reads them in
 * order), so a batch is always exactly one round trip. See pipeline.ts for sending it and reading answers.
 *
 * Message layouts: https://www.postgresql.org/docs/current/protocol-message-formats.html
 */
import type { Value } from '../../shared/protocol/messages';

/** A statement the replica parses once per connection (Parse), then only binds and executes. */
export interface NamedStatement {
  /** unique per connection and text; at most 63 bytes */
  readonly name: string;
  readonly text: string;
}

const COPY_SPECIAL = /[\\\t\n\r]/;

/** Escapes a value for COPY text format: backslash, tab, newline and carriage return. */
export function copyEscape(v: string): string {
  if (!COPY_SPECIAL.test(v)) return v;
  return v.replace(/\\/g, '\\\\').replace(/\t/g, '\\t').replace(/\n/g, '\\n').replace(/\r/g, '\\r');
}

const NO_INDEXES: readonly number[] = [];
const EMPTY = Buffer.alloc(0);

/**
 * Buffers of sent batches, for the next batches: a batch per replica commit would otherwise allocate a
 * fresh buffer hundreds of times a second (external memory that drives the garbage collector).
 */
const spare: Buffer[] = [];
/** two per applier are in use at most (double-buffered flushes); bulk-sized buffers are not kept (RSS) */
const SPARE_BUFFERS = 4;
const SPARE_MAX_BYTES = 256 * 1024;

export class PipelineBatch {
  private buf: Buffer;
  private off = 0;
  /** the SQL of every Execute, in order: an error answer names the statement it belongs to */
  readonly statements: string[] = [];

  /**
   * @param parsed names of the statements already parsed on the connection this batch goes to (shared by
   *   all batches of that connection; names this batch parses are added as they are written)
   */
  constructor(
    private readonly parsed: Set<string>,
    initialBytes = 16 * 1024,
  ) {
    this.buf = spare.pop() ?? Buffer.allocUnsafe(initialBytes);
  }

  get byteLength(): number {
    return this.off;
  }

  /** number of statements executed by this batch */
  get length(): number {
    return this.statements.length;
  }

  /**
   * Runs a named statement with `values` as its parameters; with `indexes`, the parameters are
   * `values[indexes[0]], values[indexes[1]], ...`, then `more[moreIndexes[0]], ...` (no array built per row).
   */
  execute(
    stmt: NamedStatement,
    values: readonly Value[],
    indexes?: readonly number[] | null,
    more?: readonly Value[],
    moreIndexes: readonly number[] = NO_INDEXES,
  ): void {
    if (!this.parsed.has(stmt.name)) {
      this.parse(stmt.name, stmt.text);
      this.parsed.add(stmt.name);
    }
    this.bind(stmt.name, values, indexes ?? null, more ?? null, moreIndexes);
    this.executeMessage();
    this.statements.push(stmt.text);
  }

  /** Runs one SQL statement as the unnamed statement (parsed each time: for rare and one-off statements). */
  executeText(text: string, values: readonly Value[] = []): void {
    this.parse('', text);
    this.bind('', values, null, null, NO_INDEXES);
    this.executeMessage();
    this.statements.push(text);
  }

  /** `copy` is a `COPY ... FROM STDIN` (text format); `rows` go in as one CopyData message. */
  copyRows(copy: string, rows: readonly (readonly Value[])[]): void {
    this.executeText(copy);
    this.ensure(5);
    const start = this.off;
    this.buf[this.off] = 0x64; // 'd' CopyData
    this.off += 5;
    for (const row of rows) {
      let line = '';
      for (let i = 0; i < row.length; i++) {
        const v = row[i];
        line += (i ? '\t' : '') + (v === null ? '\\N' : copyEscape(v));
      }
      this.utf8(`${line}\n`);
    }
    this.buf.writeInt32BE(this.off - start - 1, start + 1);
    this.ensure(5);
    this.buf[this.off] = 0x63; // 'c' CopyDone
    this.buf.writeInt32BE(4, this.off + 1);
    this.off += 5;
  }

  /**
   * Once the replica answered the whole batch (its bytes are all written and read): the buffer serves a
   * later batch. The batch is not used afterwards.
   */
  recycle(): void {
    if (spare.length < SPARE_BUFFERS && this.buf.length <= SPARE_MAX_BYTES) spare.push(this.buf);
    this.buf = EMPTY;
    this.off = 0;
  }

  /** The bytes to send: everything written, then Sync. */
  finish(): Buffer {
    this.ensure(5);
    this.buf[this.off] = 0x53; // 'S' Sync
    this.buf.writeInt32BE(4, this.off + 1);
    this.off += 5;
    return this.buf.subarray(0, this.off);
  }

  private parse(name: string, text: string): void {
    const start = this.begin(0x50); // 'P'
    this.cstring(name);
    this.cstring(text);
    this.int16(0); // no parameter types given: the replica infers them from the statement
    this.end(start);
  }

  private bind(
    name: string,
    values: readonly Value[],
    indexes: readonly number[] | null,
    more: readonly Value[] | null,
    moreIndexes: readonly number[],
  ): void {
    const start = this.begin(0x42); // 'B'
    const count = (indexes ? indexes.length : values.length) + (more ? moreIndexes.length : 0);
    this.ensure(10 + name.length * 3);
    this.buf[this.off++] = 0; // unnamed portal
    this.cstring(name);
    this.int16(1); // one format code for all parameters:
    this.int16(0); // text
    this.int16(count);
    if (indexes) for (let i = 0; i < indexes.length; i++) this.param(values[indexes[i]]);
    else for (let i = 0; i < values.length; i++) this.param(values[i]);
    if (more) for (let i = 0; i < moreIndexes.length; i++) this.param(more[moreIndexes[i]]);
    this.int16(0); // results in text
    this.end(start);
  }

  private executeMessage(): void {
    this.ensure(10);
    const b = this.buf;
    const o = this.off;
    b[o] = 0x45; // 'E'
    b.writeInt32BE(9, o + 1);
    b[o + 5] = 0; // unnamed portal
    b.writeInt32BE(0, o + 6); // all rows
    this.off += 10;
  }

  private param(v: Value | undefined): void {
    if (v === null || v === undefined) {
      this.ensure(4);
      this.buf.writeInt32BE(-1, this.off);
      this.off += 4;
      return;
    }
    this.ensure(4 + v.length * 3);
    const n = this.buf.write(v, this.off + 4, 'utf8');
    this.buf.writeInt32BE(n, this.off);
    this.off += 4 + n;
  }

  private begin(code: number): number {
    this.ensure(5);
    const start = this.off;
    this.buf[start] = code;
    this.off += 5;
    return start;
  }

  /** fills in the length of the message that `begin` started at `start` */
  private end(start: number): void {
    this.buf.writeInt32BE(this.off - start - 1, start + 1);
  }

  private cstring(s: string): void {
    this.utf8(s);
    this.ensure(1);
    this.buf[this.off++] = 0;
  }

  private utf8(s: string): void {
    this.ensure(s.length * 3);
    this.off += this.buf.write(s, this.off, 'utf8');
  }

  private int16(v: number): void {
    this.ensure(2);
    this.buf.writeInt16BE(v, this.off);
    this.off += 2;
  }

  private ensure(n: number): void {
    if (this.off + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.off + n));
    this.buf.copy(next, 0, 0, this.off);
    this.buf = next;
  }
}
