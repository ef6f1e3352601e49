/**
 * What snapshots the backup server offers: its catalog.json files when present (tolerant of an array or an
 * object holding arrays), otherwise the folders `<source>/<id>/` and their manifests. Newest first.
 */
import { z } from 'zod';
import { PgferryError } from '../../shared/errors';
import type { Logger } from '../../shared/log';
import { type CatalogEntry, MANIFEST_FILE, SNAPSHOT_ID_RE } from '../../shared/snapshot/manifest';
import { formatBytes } from '../../shared/units';
import type { SnapshotSource } from './source';

export const CATALOG_FILE = 'catalog.json';
const MAX_CATALOG_BYTES = 16 * 1024 * 1024;
const MAX_MANIFEST_BYTES = 64 * 1024 * 1024;

const entrySchema = z.object({
  id: z.string().regex(SNAPSHOT_ID_RE),
  source: z.string().min(1),
  finishedAt: z.string(),
  lsn: z.string(),
  totalBytes: z.number().min(0),
  appVersion: z.string().nullable().optional(),
  pgMajor: z.number().int(),
});

function toEntry(x: unknown): CatalogEntry | null {
  const r = entrySchema.safeParse(x);
  if (!r.success) return null;
  const { id, source, finishedAt, lsn, totalBytes, appVersion, pgMajor } = r.data;
  return { id, source, finishedAt, lsn, totalBytes, appVersion: appVersion ?? null, pgMajor };
}

/**
 * Entries from a catalog document: the server's `{ formatVersion, snapshots: [...] }`, a bare array, or an
 * object whose values are entries or arrays of entries. Null when nothing in it looks like a catalog.
 */
export function parseCatalog(text: string): CatalogEntry[] | null {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return null;
  }
  const items: unknown[] = [];
  if (Array.isArray(doc)) items.push(...doc);
  else if (typeof doc === 'object' && doc !== null) {
    const single = toEntry(doc);
    if (single) return [single];
    const { snapshots } = doc as { snapshots?: unknown };
    if (Array.isArray(snapshots)) items.push(...snapshots);
    else
      for (const v of Object.values(doc)) {
        if (Array.isArray(v)) items.push(...v);
        else items.push(v);
      }
  } else return null;
  const entries = items.map(toEntry).filter((e): e is CatalogEntry => e !== null);
  return entries.length > 0 || items.length === 0 ? entries : null;
}

export function sortNewestFirst(entries: CatalogEntry[]): CatalogEntry[] {
  return [...entries].sort(
    (a, b) =>
      b.finishedAt.localeCompare(a.finishedAt) ||
      b.id.localeCompare(a.id) ||
      a.source.localeCompare(b.source),
  );
}

async function scanFolders(src: SnapshotSource, source?: string): Promise<CatalogEntry[]> {
  const sources = source
    ? [source]
    : (await src.list('')).filter((e) => e.isDirectory && !e.name.startsWith('.')).map((e) => e.name);
  const out: CatalogEntry[] = [];
  for (const s of sources) {
    const ids = (await src.list(s)).filter((e) => e.isDirectory && SNAPSHOT_ID_RE.test(e.name));
    for (const { name: id } of ids) {
      const text = await src.readText(`${s}/${id}/${MANIFEST_FILE}`, MAX_MANIFEST_BYTES);
      if (text === null) continue;
      let raw: unknown;
      try {
        raw = JSON.parse(text);
      } catch {
        continue;
      }
      const e = toEntry(raw);
      if (e && e.id === id && e.source === s) out.push(e);
    }
  }
  return out;
}

/** The complete snapshots the source offers (of one snapshot source name when given), newest first. */
export async function listSnapshots(
  src: SnapshotSource,
  opts: { source?: string; logger?: Logger } = {},
): Promise<CatalogEntry[]> {
  const file = opts.source ? `${opts.source}/${CATALOG_FILE}` : CATALOG_FILE;
  const text = await src.readText(file, MAX_CATALOG_BYTES);
  let entries = text === null ? null : parseCatalog(text);
  if (entries === null) {
    if (text !== null)
      opts.logger?.warn(
        `${file} on ${src.description} is not a readable catalog; reading the folders instead`,
      );
    entries = await scanFolders(src, opts.source);
  }
  if (opts.source) entries = entries.filter((e) => e.source === opts.source);
  return sortNewestFirst(entries);
}

export interface Choice {
  snapshotId?: string;
  latest?: boolean;
  source?: string;
}

/** The snapshot named by --snapshot, or the newest with --latest; refuses ambiguity between sources. */
export function chooseSnapshot(entries: CatalogEntry[], choice: Choice, where: string): CatalogEntry {
  if (choice.snapshotId) {
    const hits = entries.filter((e) => e.id === choice.snapshotId);
    if (hits.length === 1) return hits[0];
    if (hits.length > 1) {
      throw new PgferryError(
        'USAGE',
        `snapshot ${choice.snapshotId} exists for several sources (${hits.map((h) => h.source).join(', ')})`,
        { hint: 'add --source NAME to say which one' },
      );
    }
    const ids = entries.slice(0, 5).map((e) => e.id);
    throw new PgferryError(
      'SNAPSHOT_NOT_FOUND',
      `snapshot ${choice.snapshotId} is not on ${where}${choice.source ? ` for source ${choice.source}` : ''}${ids.length ? ` (newest: ${ids.join(', ')})` : ''}`,
      { hint: 'list the snapshots with pgferry recover --list and pass one of the ids to --snapshot' },
    );
  }
  if (entries.length === 0) {
    throw new PgferryError(
      'SNAPSHOT_NOT_FOUND',
      `no complete snapshot on ${where}${choice.source ? ` for source ${choice.source}` : ''}`,
      {
        hint: 'check --source, or take one on the backup server with pgferry snapshot create --config server.yaml',
      },
    );
  }
  const sources = [...new Set(entries.map((e) => e.source))];
  if (sources.length > 1) {
    throw new PgferryError('USAGE', `${where} has snapshots of several sources (${sources.join(', ')})`, {
      hint: 'add --source NAME to say which one to recover',
    });
  }
  return entries[0];
}

/** The --list table: id, source, finished at, LSN, size, application version, PostgreSQL major. */
export function formatCatalogTable(entries: CatalogEntry[]): string {
  const head = ['#', 'ID', 'SOURCE', 'FINISHED AT (UTC)', 'LSN', 'SIZE', 'APP VERSION', 'PG'];
  const rows = entries.map((e, i) => [
    String(i + 1),
    e.id,
    e.source,
    e.finishedAt.replace('T', ' ').replace(/\.\d+Z$|Z$/, ''),
    e.lsn,
    formatBytes(e.totalBytes),
    e.appVersion ?? '-',
    String(e.pgMajor),
  ]);
  const widths = head.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c].length)));
  const line = (r: string[]) =>
    r
      .map((v, c) => (c === 0 || c === 5 ? v.padStart(widths[c]) : v.padEnd(widths[c])))
      .join('  ')
      .trimEnd();
  return [line(head), ...rows.map(line)].join('\n');
}
