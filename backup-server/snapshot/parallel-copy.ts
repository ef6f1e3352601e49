/**
 * The data of a snapshot, copied over several connections that share one exported snapshot. Biggest
 * tables first; a table too big for one connection to finish in step with the rest is split into page
 * ranges, one per connection, whose files are appended in order at the end.
 */
import * as path from 'node:path';
import type { ClientBase } from 'pg';
import type { ManifestTable } from '../../shared/snapshot/manifest';
import {
  appendPart,
  type CopiedPart,
  copyStatement,
  copyToFile,
  type PageRange,
  pageRanges,
} from './table-copy';
import type { TablePlan } from './table-plan';

export interface ParallelCopyOptions {
  /** connections inside the snapshot, one worker each; a worker starts once its connection is ready */
  clients: (ClientBase | Promise<ClientBase>)[];
  plans: TablePlan[];
  /** the partial snapshot folder */
  dir: string;
  compressionLevel: number;
  /** false when the server cannot scan page ranges (PostgreSQL < 14) */
  canSplit: boolean;
  blockBytes: number;
  /** tables smaller than this are never split */
  splitTableMinBytes: number;
  /** fault injection (tests): a pause before each table */
  delayMs?: number;
}

interface Job {
  plan: TablePlan;
  range?: PageRange;
  part: number;
}

/**
 * The split threshold when the config sets none. One table's copy already keeps about two cores busy (the
 * replica's COPY, and here parsing and gzip), so on fewer than four cores splitting it adds work (each
 * range is a scan through the executor, not COPY's own) without adding speed: measured on 2 cores,
 * pgbench -s 10, a full snapshot took 1.16x pg_dump -Fd -j 2's time split and 1.09x unsplit.
 */
export const DEFAULT_SPLIT_TABLE_MIN_BYTES = 32 * 1024 * 1024;
export const SPLIT_MIN_CORES = 4;

/** The split threshold to use: the configured one, else the default where there are cores for it. */
export function splitTableMinBytes(configured: number | undefined, cores: number): number {
  if (configured !== undefined) return configured;
  return cores >= SPLIT_MIN_CORES ? DEFAULT_SPLIT_TABLE_MIN_BYTES : Number.POSITIVE_INFINITY;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function jobsFor(opts: ParallelCopyOptions): Job[] {
  const k = opts.clients.length;
  const total = opts.plans.reduce((n, p) => n + p.table.relationBytes, 0);
  const sorted = [...opts.plans].sort((a, b) => b.table.relationBytes - a.table.relationBytes);
  return sorted.flatMap((plan) => {
    const bytes = plan.table.relationBytes;
    if (!opts.canSplit || k < 2 || bytes < opts.splitTableMinBytes || bytes <= total / k)
      return [{ plan, part: 0 }];
    const pages = Math.ceil(bytes / opts.blockBytes);
    return pageRanges(pages, k).map((range, part) => ({ plan, range, part }));
  });
}

const partFile = (file: string, part: number) => (part === 0 ? file : `${file}.part${part}`);

/** Copies every planned table; always settles after all workers stopped, rejecting with the first error. */
export async function copyTables(opts: ParallelCopyOptions): Promise<ManifestTable[]> {
  const queue = jobsFor(opts);
  const parts = new Map<TablePlan, CopiedPart[]>();
  const worker = async (ready: ClientBase | Promise<ClientBase>) => {
    try {
      const client = await ready;
      for (let job = queue.shift(); job; job = queue.shift()) {
        if (opts.delayMs) await sleep(opts.delayMs);
        const file = path.join(opts.dir, partFile(job.plan.file, job.part));
        const copied = await copyToFile(client, copyStatement(job.plan.table, job.range), file, opts);
        const list = parts.get(job.plan) ?? [];
        list[job.part] = copied;
        parts.set(job.plan, list);
      }
    } catch (e) {
      queue.length = 0; // the other workers stop after their current table
      throw e;
    }
  };
  const results = await Promise.allSettled(opts.clients.map(worker));
  for (const r of results) if (r.status === 'rejected') throw r.reason;
  const out: ManifestTable[] = [];
  for (const plan of opts.plans) {
    const [first, ...rest] = parts.get(plan) ?? [];
    const file = path.join(opts.dir, plan.file);
    for (let i = 0; i < rest.length; i++) await appendPart(file, partFile(file, i + 1), first, rest[i]);
    const { schema, name, columns } = plan.table;
    out.push({
      schema,
      name,
      file: plan.file,
      rows: first.rows,
      bytes: first.bytes,
      sha256: first.hash.digest('hex'),
      linked: false,
      columns,
    });
  }
  return out;
}
