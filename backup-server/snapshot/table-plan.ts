/**
 * Which tables a snapshot writes and which it hard-links from the previous snapshot, and each data file's
 * name. Pure: the writer checks the previous files on disk before linking.
 */
import { compareLsn, parseLsn } from '../../shared/lsn';
import type { ManifestTable, SnapshotManifest } from '../../shared/snapshot/manifest';
import type { ReplicaTable } from './replica-contents';

export interface TablePlan {
  table: ReplicaTable;
  /** path inside the snapshot folder, '/' separated */
  file: string;
  /** the previous snapshot's entry when the table is unchanged since it */
  linkFrom: ManifestTable | null;
}

const MAX_NAME_PART = 100;

/** A file-name-safe, unambiguous form of an identifier: anything but [A-Za-z0-9_-] is %-escaped. */
export function fileNamePart(identifier: string): string {
  const escaped = Array.from(Buffer.from(identifier, 'utf8'))
    .map((b) => {
      const c = String.fromCharCode(b);
      return /[A-Za-z0-9_-]/.test(c) ? c : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
    })
    .join('');
  return escaped.length > MAX_NAME_PART ? escaped.slice(0, MAX_NAME_PART) : escaped;
}

/** Why the previous snapshot cannot serve as a link source at all, or null when it can. */
export function linkBaseProblem(
  previous: SnapshotManifest | null,
  current: { source: string; systemIdentifier: string; syncId: string },
): string | null {
  if (!previous) return 'no previous snapshot';
  if (previous.source !== current.source) return 'previous snapshot is of another source';
  if (previous.systemIdentifier !== current.systemIdentifier)
    return 'the source system identifier changed since the previous snapshot';
  if (previous.syncId !== current.syncId) return 'the replica was resynced since the previous snapshot';
  return null;
}

function sameColumns(a: string[] | undefined, b: string[]): boolean {
  return a !== undefined && a.length === b.length && a.every((c, i) => c === b[i]);
}

/** Unchanged: the applier recorded its last change at or before the previous snapshot's LSN. */
export function unchangedSince(
  table: ReplicaTable,
  previous: SnapshotManifest,
  prev: ManifestTable,
): boolean {
  if (table.lastChangeLsn === null) return false;
  if (!sameColumns(prev.columns, table.columns)) return false;
  return compareLsn(parseLsn(table.lastChangeLsn), parseLsn(previous.lsn)) <= 0;
}

export function planTables(tables: ReplicaTable[], previous: SnapshotManifest | null): TablePlan[] {
  const prevByName = new Map<string, ManifestTable>();
  for (const t of previous?.tables ?? []) prevByName.set(`${t.schema}\u0000${t.name}`, t);
  const used = new Set<string>();
  const sorted = [...tables].sort((a, b) =>
    a.schema === b.schema ? (a.name < b.name ? -1 : 1) : a.schema < b.schema ? -1 : 1,
  );
  return sorted.map((table) => {
    const base = `data/${fileNamePart(table.schema)}.${fileNamePart(table.name)}`;
    let file = `${base}.copy.gz`;
    for (let n = 2; used.has(file); n++) file = `${base}~${n}.copy.gz`;
    used.add(file);
    const prev = prevByName.get(`${table.schema}\u0000${table.name}`);
    const linkFrom = previous && prev && unchangedSince(table, previous, prev) ? prev : null;
    return { table, file, linkFrom };
  });
}
