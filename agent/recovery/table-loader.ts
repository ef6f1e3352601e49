/**
 * Table data into the target: each snapshot file (gzip'd COPY text) is streamed through gunzip into
 * `COPY ... FROM STDIN` on one of `jobs` connections. A table large enough to dominate the load is spread
 * over all connections at once: COPY text has one row per line, so whole-line chunks can go to any stream.
 */
import * as fs from 'node:fs';
import { pipeline } from 'node:stream/promises';
import * as zlib from 'node:zlib';
import type { Client } from 'pg';
import { from as copyFrom, type CopyStreamQuery } from 'pg-copy-streams';
import { PgferryError } from '../../shared/errors';
import { qualified, quoteIdent } from './ident';

export interface TableFile {
  schema: string;
  name: string;
  /** local path of the gzip'd COPY file */
  path: string;
  bytes: number;
  columns?: string[];
}

export interface TableLoaded {
  schema: string;
  name: string;
  rows: number;
  seconds: number;
}

export interface LoadOptions {
  clients: Client[];
  tables: TableFile[];
  /**
   * files at least this large (compressed) are spread over every connection; default: those holding more
   * than half a connection's share of the data (at least 1 MiB), i.e. the tables that would finish last
   */
  splitMinBytes?: number;
  onTable?: (t: TableLoaded) => void;
}

export function copySql(t: Pick<TableFile, 'schema' | 'name' | 'columns'>): string {
  const cols = t.columns?.length ? ` (${t.columns.map(quoteIdent).join(', ')})` : '';
  return `COPY ${qualified(t.schema, t.name)}${cols} FROM STDIN`;
}

function fail(t: TableFile, e: unknown): PgferryError {
  if (e instanceof PgferryError) return e;
  return new PgferryError(
    'RESTORE_FAILED',
    `loading ${t.schema}.${t.name} failed: ${e instanceof Error ? e.message : String(e)}`,
    { cause: e, details: { table: `${t.schema}.${t.name}` } },
  );
}

function gunzipOf(t: TableFile): NodeJS.ReadableStream & zlib.Gunzip {
  const gz = zlib.createGunzip({ chunkSize: 256 * 1024 });
  fs.createReadStream(t.path, { highWaterMark: 1024 * 1024 })
    .on('error', (e) => gz.destroy(e))
    .pipe(gz);
  return gz;
}

async function copyOne(c: Client, t: TableFile): Promise<number> {
  const stream = c.query(copyFrom(copySql(t)));
  await pipeline(gunzipOf(t), stream);
  return stream.rowCount;
}

/** One table over several COPY streams, fed whole lines by whichever stream is ready. */
async function copySpread(clients: Client[], t: TableFile): Promise<number> {
  const streams: CopyStreamQuery[] = clients.map((c) => c.query(copyFrom(copySql(t))));
  const gz = gunzipOf(t);
  let failure: unknown = null;
  let wake: (() => void) | null = null;
  const wakeUp = () => {
    const w = wake;
    wake = null;
    w?.();
  };
  const onError = (e: unknown) => {
    failure ??= e;
    gz.destroy();
    for (const s of streams) s.destroy();
    wakeUp();
  };
  for (const s of streams) s.on('error', onError).on('drain', wakeUp);
  gz.on('error', onError);
  const ready = async (): Promise<CopyStreamQuery> => {
    for (;;) {
      const free = streams.find((s) => !s.writableNeedDrain);
      if (free || failure) return free ?? streams[0];
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
    }
  };
  try {
    let carry: Buffer | null = null;
    for await (const chunk of gz) {
      const buf: Buffer = carry ? Buffer.concat([carry, chunk as Buffer]) : (chunk as Buffer);
      const cut = buf.lastIndexOf(10);
      if (cut < 0) {
        carry = buf;
        continue;
      }
      carry = cut + 1 < buf.length ? buf.subarray(cut + 1) : null;
      const s = await ready();
      if (failure) break;
      s.write(buf.subarray(0, cut + 1));
    }
    if (carry && !failure) {
      const s = await ready();
      if (!failure) s.write(carry);
    }
    if (!failure) await Promise.all(streams.map((s) => new Promise<void>((res) => s.end(res))));
  } catch (e) {
    onError(e);
  }
  if (failure) throw failure;
  return streams.reduce((n, s) => n + s.rowCount, 0);
}

/** Loads every table; resolves with the rows each COPY reported, in the order tables finished. */
export async function loadTables(opts: LoadOptions): Promise<TableLoaded[]> {
  const { clients } = opts;
  const total = opts.tables.reduce((n, t) => n + t.bytes, 0);
  const splitMin = opts.splitMinBytes ?? Math.max(1024 * 1024, total / (2 * clients.length));
  const ordered = [...opts.tables].sort((a, b) => b.bytes - a.bytes);
  const big = clients.length > 1 ? ordered.filter((t) => t.bytes >= splitMin) : [];
  const small = ordered.filter((t) => !big.includes(t));
  const done: TableLoaded[] = [];
  const finish = (t: TableFile, rows: number, started: number) => {
    const r = { schema: t.schema, name: t.name, rows, seconds: (Date.now() - started) / 1000 };
    done.push(r);
    opts.onTable?.(r);
  };
  for (const t of big) {
    const started = Date.now();
    try {
      finish(t, await copySpread(clients, t), started);
    } catch (e) {
      throw fail(t, e);
    }
  }
  let next = 0;
  let failed = false;
  await Promise.all(
    clients.map(async (c) => {
      while (!failed && next < small.length) {
        const t = small[next++];
        const started = Date.now();
        try {
          finish(t, await copyOne(c, t), started);
        } catch (e) {
          failed = true;
          throw fail(t, e);
        }
      }
    }),
  );
  return done;
}
