/**
 * The snapshot format: folder layout, ids and manifest. A snapshot of source S lives in
 * `<dir>/S/<id>/` once complete and in `<dir>/S/.<id>.partial/` while being written (never listed, never served).
 */
export const MANIFEST_FORMAT_VERSION = 1;
export const MANIFEST_FILE = 'manifest.json';

/** Ids sort lexically in time order: 20261122T031500123Z (UTC, milliseconds). */
export const SNAPSHOT_ID_RE = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})(\d{3})Z$/;

export function formatSnapshotId(d: Date): string {
  return d.toISOString().replace(/[-:]/g, '').replace('.', '');
}

export function parseSnapshotId(id: string): Date {
  const m = SNAPSHOT_ID_RE.exec(id);
  if (!m) throw new Error(`invalid snapshot id "${id}": expected the form 20261122T031500123Z`);
  return new Date(Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6], +m[7]));
}

export function isSnapshotId(id: string): boolean {
  return SNAPSHOT_ID_RE.test(id);
}

export function partialDirName(id: string): string {
  return `.${id}.partial`;
}

export const PARTIAL_DIR_RE = /^\.(.+)\.partial$/;

export interface ManifestFile {
  /** path relative to the snapshot folder, '/' separated */
  file: string;
  bytes: number;
  sha256: string;
}

export interface ManifestTable extends ManifestFile {
  schema: string;
  name: string;
  rows: number;
  /** true when the file was hard-linked from the previous snapshot (table unchanged) */
  linked: boolean;
  /** the columns in the file's order (COPY ... (columns) FROM STDIN); absent in older manifests */
  columns?: string[];
}

export interface ManifestSequence {
  schema: string;
  name: string;
  /** the value as text (int8 range) */
  value: string;
  isCalled: boolean;
}

export interface SnapshotManifest {
  formatVersion: number;
  id: string;
  pgferryVersion: string;
  pgMajor: number;
  source: string;
  systemIdentifier: string;
  /** identifies the replica's initial sync; linking across different syncs is never done */
  syncId: string;
  appVersion: string | null;
  lsn: string;
  startedAt: string;
  finishedAt: string;
  schemaHash: string | null;
  /** true when, just before this snapshot, the replica's schema hash was compared with the primary's and matched */
  schemaVerified?: boolean;
  /**
   * fingerprint of the replica's catalogs when the schema was dumped; a later snapshot with the same
   * fingerprint hard-links the schema files instead of running pg_dump again (absent in older manifests)
   */
  schemaFingerprint?: string;
  /**
   * schema-pre.sql and schema-post.sql: plain SQL from pg_dump (psql's \restrict lines removed), runnable
   * by any client; table data goes between them, then the sequences' setval.
   */
  schema: { pre: ManifestFile; post: ManifestFile };
  tables: ManifestTable[];
  sequences: ManifestSequence[];
  totalBytes: number;
}

/** What catalogs (FTP, recovery) show for one snapshot. */
export interface CatalogEntry {
  id: string;
  source: string;
  finishedAt: string;
  lsn: string;
  totalBytes: number;
  appVersion: string | null;
  pgMajor: number;
}

export function catalogEntry(m: SnapshotManifest): CatalogEntry {
  return {
    id: m.id,
    source: m.source,
    finishedAt: m.finishedAt,
    lsn: m.lsn,
    totalBytes: m.totalBytes,
    appVersion: m.appVersion,
    pgMajor: m.pgMajor,
  };
}
