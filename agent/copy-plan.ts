/**
 * What the initial copy sends, in which order: one job per table, biggest first, so the streams finish
 * together; a table of at least `splitTableMinBytes` is cut into one page range per stream, so even a
 * database that is one big table loads on every stream (and every core of the backup side) at once.
 */
import type { TableRef } from '../shared/protocol/messages';
import { type PageRange, pageRangeCondition, pageRanges } from '../shared/page-range';
import { qualified, quoteIdent } from './recovery/ident';

export interface TableInfo extends TableRef {
  /** heap size when the copy started */
  bytes: number;
  pages: number;
  /** the columns COPY of the whole table sends (not dropped, not generated), in order */
  columns: string[];
}

export interface CopyJob {
  table: TableRef;
  columns: string[];
  /** the table is copied in this many parts (1: whole) */
  parts: number;
  range: PageRange | null;
  /** estimated heap bytes of this job, for ordering */
  bytes: number;
}

export interface CopyPlanOptions {
  streams: number;
  splitTableMinBytes: number;
  /** TID range scans (an efficient page range) exist from PostgreSQL 14 on */
  pgMajor: number;
}

export function planCopy(tables: TableInfo[], o: CopyPlanOptions): CopyJob[] {
  const jobs: CopyJob[] = [];
  for (const t of tables) {
    const table = { schema: t.schema, name: t.name };
    const split =
      o.streams > 1 &&
      o.pgMajor >= 14 &&
      t.columns.length > 0 &&
      t.bytes >= o.splitTableMinBytes &&
      t.pages >= o.streams;
    if (!split) {
      jobs.push({ table, columns: t.columns, parts: 1, range: null, bytes: t.bytes });
      continue;
    }
    for (const range of pageRanges(t.pages, o.streams)) {
      const pages = (range.toPage ?? t.pages) - range.fromPage;
      jobs.push({ table, columns: t.columns, parts: o.streams, range, bytes: (t.bytes * pages) / t.pages });
    }
  }
  // biggest first; a stable sort keeps the parts of one table (equal sizes) next to each other
  return jobs.sort((a, b) => b.bytes - a.bytes);
}

/** The COPY statement of a job, in binary format. */
export function copyJobSql(job: CopyJob): string {
  const table = qualified(job.table.schema, job.table.name);
  if (!job.range) return `COPY ${table} TO STDOUT WITH (FORMAT binary)`;
  const list = job.columns.map(quoteIdent).join(', ');
  return `COPY (SELECT ${list} FROM ${table} WHERE ${pageRangeCondition(job.range)}) TO STDOUT WITH (FORMAT binary)`;
}
