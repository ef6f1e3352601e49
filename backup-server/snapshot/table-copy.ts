/**
 * One table's data file: COPY (text format) streamed from the replica through gzip into the file, counting
 * rows and bytes and hashing the bytes as they are written. Never holds the table in memory.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as zlib from 'node:zlib';
import type { ClientBase } from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import { escapeIdentifier } from 'pg';
import { qualifiedName } from './replica-contents';

export interface CopiedFile {
  rows: number;
  bytes: number;
  sha256: string;
}

/** Passes bytes through unchanged while counting and hashing them. */
class HashCounter extends Transform {
  bytes = 0;
  private readonly hash = createHash('sha256');

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.bytes += chunk.length;
    this.hash.update(chunk);
    done(null, chunk);
  }

  digest(): string {
    return this.hash.digest('hex');
  }
}

export function copyStatement(t: { schema: string; name: string; columns: string[] }): string {
  const cols = t.columns.length ? ` (${t.columns.map(escapeIdentifier).join(', ')})` : '';
  return `COPY ${qualifiedName(t.schema, t.name)}${cols} TO STDOUT`;
}

const WRITE_BUFFER_BYTES = 1024 * 1024;
const GZIP_CHUNK_BYTES = 256 * 1024;

/** Writes the table to `file` (which must not exist) and fsyncs it. */
export async function copyTableToFile(
  client: ClientBase,
  table: { schema: string; name: string; columns: string[] },
  file: string,
  opts: { compressionLevel: number },
): Promise<CopiedFile> {
  const source = client.query(copyTo(copyStatement(table)));
  const counter = new HashCounter();
  const out = fs.createWriteStream(file, { flags: 'wx', highWaterMark: WRITE_BUFFER_BYTES });
  await pipeline(
    source,
    zlib.createGzip({ level: opts.compressionLevel, chunkSize: GZIP_CHUNK_BYTES }),
    counter,
    out,
  );
  const fh = await fs.promises.open(file, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
  return { rows: source.rowCount, bytes: counter.bytes, sha256: counter.digest() };
}
