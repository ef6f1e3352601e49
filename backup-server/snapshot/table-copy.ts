/**
 * Table data files: COPY (text format) streamed from the replica through gzip into a file, counting rows
 * and bytes and hashing the bytes as they are written. Never holds a table in memory. A big table can be
 * copied in page ranges on several connections; each range is a gzip member, and the members appended in
 * order form the table's file (a multi-member gzip file, which gunzip reads as one stream).
 */
import { createHash, type Hash } from 'node:crypto';
import * as fs from 'node:fs';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as zlib from 'node:zlib';
import { type ClientBase, escapeIdentifier } from 'pg';
import { type PageRange, pageRangeCondition } from '../../shared/page-range';
import { CopyOut } from '../../shared/pg-copy-out';
import { qualifiedName } from '../../shared/sql-ident';

export { type PageRange, pageRanges } from '../../shared/page-range';

/** A file being written: rows and bytes so far, and the running hash of its bytes. */
export interface CopiedPart {
  rows: number;
  bytes: number;
  hash: Hash;
}

/** Passes bytes through unchanged while counting and hashing them. */
class HashCounter extends Transform {
  bytes = 0;

  constructor(readonly hash: Hash = createHash('sha256')) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.bytes += chunk.length;
    this.hash.update(chunk);
    done(null, chunk);
  }
}

export function copyStatement(
  t: { schema: string; name: string; columns: string[] },
  range?: PageRange,
): string {
  const table = qualifiedName(t.schema, t.name);
  if (!range) {
    const cols = t.columns.length ? ` (${t.columns.map(escapeIdentifier).join(', ')})` : '';
    return `COPY ${table}${cols} TO STDOUT`;
  }
  return `COPY (SELECT ${t.columns.map(escapeIdentifier).join(', ')} FROM ${table} WHERE ${pageRangeCondition(range)}) TO STDOUT`;
}

const WRITE_BUFFER_BYTES = 1024 * 1024;
const GZIP_CHUNK_BYTES = 256 * 1024;
/** COPY rows are packed into buffers of this size before gzip sees them (one threadpool job per buffer) */
const COPY_CHUNK_BYTES = 256 * 1024;

/**
 * Calls `done` with each chunk `t` was given once `t` has finished with it: a Transform calls its
 * `_transform` callback only after it has consumed the chunk (zlib: after the compression job that reads
 * it returned). A chunk it never finishes (destroyed mid-way) is never passed to `done`.
 */
function afterEachChunk<T extends Transform>(t: T, done: (chunk: Buffer) => void): T {
  const transform = t._transform.bind(t);
  t._transform = (chunk: Buffer, encoding, callback) =>
    transform(chunk, encoding, (error, data) => {
      if (!error) done(chunk);
      callback(error, data);
    });
  return t;
}

/** Runs `copySql` into a new gzip file `file` (which must not exist); the caller fsyncs it. */
export async function copyToFile(
  client: ClientBase,
  copySql: string,
  file: string,
  opts: { compressionLevel: number },
): Promise<CopiedPart> {
  const source = client.query(new CopyOut(copySql, COPY_CHUNK_BYTES));
  const counter = new HashCounter();
  const out = fs.createWriteStream(file, { flags: 'wx', highWaterMark: WRITE_BUFFER_BYTES });
  const gzip = zlib.createGzip({ level: opts.compressionLevel, chunkSize: GZIP_CHUNK_BYTES });
  await pipeline(
    source,
    afterEachChunk(gzip, (chunk) => source.recycle(chunk)),
    counter,
    out,
  );
  return { rows: source.rowCount, bytes: counter.bytes, hash: counter.hash };
}

/** Appends `partFile` to `file`, continuing `into`'s count and hash, then removes the part. */
export async function appendPart(
  file: string,
  partFile: string,
  into: CopiedPart,
  part: CopiedPart,
): Promise<void> {
  const counter = new HashCounter(into.hash);
  await pipeline(
    fs.createReadStream(partFile, { highWaterMark: WRITE_BUFFER_BYTES }),
    counter,
    fs.createWriteStream(file, { flags: 'a', highWaterMark: WRITE_BUFFER_BYTES }),
  );
  into.bytes += counter.bytes;
  into.rows += part.rows;
  await fs.promises.rm(partFile);
}
