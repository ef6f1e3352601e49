/**
 * The snapshot catalog served over FTP: `catalog.json` at the root (every source) and in each `<source>/`
 * folder, generated from the manifests at request time, so clients never need to parse listings.
 *
 * A snapshot is complete when `<root>/<source>/<id>/manifest.json` is a regular file whose JSON names that
 * same source and id. Partial folders (`.<id>.partial`), dot-entries, symlinked source or snapshot folders
 * and folders without a valid manifest are never part of it.
 */
import { constants, type Dirent, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { sourceName } from '../../shared/config/common';
import {
  type CatalogEntry,
  catalogEntry,
  isSnapshotId,
  MANIFEST_FILE,
  type SnapshotManifest,
} from '../../shared/snapshot/manifest';

export const CATALOG_FILE = 'catalog.json';
export const CATALOG_FORMAT_VERSION = 1;

/** A manifest larger than this is not read (a manifest lists tables, it is never this big). */
const MAX_MANIFEST_BYTES = 64 * 1024 * 1024;

/** The document served as catalog.json. */
export interface SnapshotCatalog {
  formatVersion: number;
  generatedAt: string;
  /** the source this catalog covers; null for the root catalog (all sources) */
  source: string | null;
  /** complete snapshots, newest first */
  snapshots: CatalogEntry[];
}

export function isSourceDirName(name: string): boolean {
  return sourceName.safeParse(name).success;
}

function isManifestFor(x: unknown, source: string, id: string): x is SnapshotManifest {
  if (typeof x !== 'object' || x === null) return false;
  const m = x as Record<string, unknown>;
  return (
    m.id === id &&
    m.source === source &&
    typeof m.formatVersion === 'number' &&
    typeof m.finishedAt === 'string' &&
    typeof m.lsn === 'string' &&
    typeof m.totalBytes === 'number' &&
    typeof m.pgMajor === 'number' &&
    (typeof m.appVersion === 'string' || m.appVersion === null)
  );
}

/**
 * The manifest of `<root>/<source>/<id>/` when that snapshot is complete, else null. Never follows a
 * symlinked manifest; never throws for a missing, unreadable or malformed one.
 */
export async function readCompleteManifest(
  root: string,
  source: string,
  id: string,
): Promise<SnapshotManifest | null> {
  if (!isSourceDirName(source) || !isSnapshotId(id)) return null;
  let handle: fsp.FileHandle | undefined;
  try {
    handle = await fsp.open(
      path.join(root, source, id, MANIFEST_FILE),
      constants.O_RDONLY | constants.O_NOFOLLOW,
    );
    const st = await handle.stat();
    if (!st.isFile() || st.size > MAX_MANIFEST_BYTES) return null;
    const parsed: unknown = JSON.parse(await handle.readFile('utf8'));
    return isManifestFor(parsed, source, id) ? parsed : null;
  } catch {
    return null;
  } finally {
    await handle?.close().catch(() => undefined);
  }
}

async function realDirs(dir: string): Promise<Dirent[]> {
  try {
    return (await fsp.readdir(dir, { withFileTypes: true })).filter((d) => d.isDirectory());
  } catch {
    return [];
  }
}

/** Source folder names under the root (real folders with a valid source name), sorted. */
export async function listSourceDirs(root: string): Promise<string[]> {
  return (await realDirs(root))
    .map((d) => d.name)
    .filter(isSourceDirName)
    .sort();
}

/** Complete snapshots of one source, or of all sources when `source` is null; newest first. */
export async function listCompleteSnapshots(root: string, source: string | null): Promise<CatalogEntry[]> {
  const sources = source === null ? await listSourceDirs(root) : isSourceDirName(source) ? [source] : [];
  const perSource = await Promise.all(
    sources.map(async (s) => {
      const ids = (await realDirs(path.join(root, s))).map((d) => d.name).filter(isSnapshotId);
      const manifests = await Promise.all(ids.map((id) => readCompleteManifest(root, s, id)));
      return manifests.filter((m): m is SnapshotManifest => m !== null).map(catalogEntry);
    }),
  );
  return perSource.flat().sort(newestFirst);
}

function newestFirst(a: CatalogEntry, b: CatalogEntry): number {
  if (a.id !== b.id) return a.id < b.id ? 1 : -1;
  return a.source < b.source ? -1 : a.source > b.source ? 1 : 0;
}

export async function buildCatalog(
  root: string,
  source: string | null,
  now: Date = new Date(),
): Promise<SnapshotCatalog> {
  return {
    formatVersion: CATALOG_FORMAT_VERSION,
    generatedAt: now.toISOString(),
    source,
    snapshots: await listCompleteSnapshots(root, source),
  };
}

/** catalog.json as served: pretty JSON, trailing newline. */
export async function renderCatalog(root: string, source: string | null): Promise<Buffer> {
  return Buffer.from(`${JSON.stringify(await buildCatalog(root, source), null, 2)}\n`, 'utf8');
}
