/**
 * The complete snapshots on disk: `<dir>/<source>/<id>/manifest.json`. Partial folders (`.<id>.partial`)
 * and folders being deleted (`.<id>.deleting`) are never listed; `removeLeftovers` clears them after a crash.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PgferryError } from '../../shared/errors';
import {
  isSnapshotId,
  MANIFEST_FILE,
  MANIFEST_FORMAT_VERSION,
  type SnapshotManifest,
} from '../../shared/snapshot/manifest';

export interface SnapshotInfo {
  source: string;
  id: string;
  /** the snapshot's folder */
  path: string;
  manifest: SnapshotManifest;
}

/** A folder that looks like a snapshot but cannot be read (reported, never deleted automatically). */
export interface CatalogProblem {
  path: string;
  problem: string;
}

const LEFTOVER_RE = /^\.(.+)\.(partial|deleting)$/;

async function readDirNames(dir: string): Promise<string[]> {
  try {
    return (await fs.promises.readdir(dir, { withFileTypes: true }))
      .filter((d) => d.isDirectory())
      .map((d) => d.name);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
}

export async function readManifest(snapshotDir: string): Promise<SnapshotManifest> {
  const file = path.join(snapshotDir, MANIFEST_FILE);
  let text: string;
  try {
    text = await fs.promises.readFile(file, 'utf8');
  } catch (e) {
    throw new PgferryError('SNAPSHOT_CORRUPT', `cannot read ${file}: ${(e as Error).message}`, { cause: e });
  }
  let m: SnapshotManifest;
  try {
    m = JSON.parse(text) as SnapshotManifest;
  } catch (e) {
    throw new PgferryError('SNAPSHOT_CORRUPT', `${file} is not valid JSON: ${(e as Error).message}`);
  }
  if (typeof m !== 'object' || m === null || !Array.isArray(m.tables) || typeof m.id !== 'string') {
    throw new PgferryError('SNAPSHOT_CORRUPT', `${file} is not a pgferry manifest`);
  }
  if (m.formatVersion > MANIFEST_FORMAT_VERSION) {
    throw new PgferryError(
      'SNAPSHOT_CORRUPT',
      `${file} has format version ${m.formatVersion}; this pgferry reads up to ${MANIFEST_FORMAT_VERSION}`,
      { hint: 'use a newer pgferry to read this snapshot' },
    );
  }
  return m;
}

/** The source folders present under `dir` (sources no longer configured included). */
export async function listSources(dir: string): Promise<string[]> {
  return (await readDirNames(dir)).filter((n) => !n.startsWith('.')).sort();
}

/** Complete snapshots, newest first, of one source or of all. */
export async function listSnapshots(
  dir: string,
  opts: { source?: string; problems?: CatalogProblem[] } = {},
): Promise<SnapshotInfo[]> {
  const sources = opts.source ? [opts.source] : await listSources(dir);
  const out: SnapshotInfo[] = [];
  for (const source of sources) {
    for (const id of await readDirNames(path.join(dir, source))) {
      if (!isSnapshotId(id)) continue;
      const p = path.join(dir, source, id);
      try {
        out.push({ source, id, path: p, manifest: await readManifest(p) });
      } catch (e) {
        opts.problems?.push({ path: p, problem: (e as Error).message });
      }
    }
  }
  return out.sort((a, b) => (a.id === b.id ? a.source.localeCompare(b.source) : a.id < b.id ? 1 : -1));
}

/** Snapshot folders by name only (no manifest read), newest first: cheap checks before a full listing. */
export async function listSnapshotIds(
  dir: string,
  source?: string,
): Promise<{ source: string; id: string }[]> {
  const out: { source: string; id: string }[] = [];
  for (const s of source ? [source] : await listSources(dir)) {
    for (const id of await readDirNames(path.join(dir, s))) if (isSnapshotId(id)) out.push({ source: s, id });
  }
  return out.sort((a, b) => (a.id === b.id ? a.source.localeCompare(b.source) : a.id < b.id ? 1 : -1));
}

/** The newest complete snapshot of a source, or null; reads only the manifests it needs. */
export async function latestSnapshot(dir: string, source: string): Promise<SnapshotInfo | null> {
  for (const { id } of await listSnapshotIds(dir, source)) {
    const p = path.join(dir, source, id);
    try {
      return { source, id, path: p, manifest: await readManifest(p) };
    } catch {
      // an unreadable folder is reported by listSnapshots; the one before it is the newest usable
    }
  }
  return null;
}

/** Finds a snapshot by id ("ID" or "SOURCE/ID"); throws SNAPSHOT_NOT_FOUND with what to do next. */
export async function findSnapshot(dir: string, ref: string, source?: string): Promise<SnapshotInfo> {
  const slash = ref.indexOf('/');
  const id = slash >= 0 ? ref.slice(slash + 1) : ref;
  const wanted = slash >= 0 ? ref.slice(0, slash) : source;
  if (!isSnapshotId(id)) {
    throw new PgferryError(
      'SNAPSHOT_NOT_FOUND',
      `"${ref}" is not a snapshot id: expected the form 20261122T031500123Z (or SOURCE/ID)`,
    );
  }
  const matches = (await listSnapshots(dir, { source: wanted })).filter((s) => s.id === id);
  if (matches.length === 0) {
    throw new PgferryError(
      'SNAPSHOT_NOT_FOUND',
      `no complete snapshot ${id}${wanted ? ` of source ${wanted}` : ''} in ${dir}`,
    );
  }
  if (matches.length > 1) {
    throw new PgferryError(
      'SNAPSHOT_NOT_FOUND',
      `snapshot id ${id} exists for several sources (${matches.map((m) => m.source).join(', ')})`,
      { hint: `name the source: --source ${matches[0].source} or ${matches[0].source}/${id}` },
    );
  }
  return matches[0];
}

/** Leftover folders from an interrupted snapshot or deletion, under every source folder. */
export async function listLeftovers(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const source of await listSources(dir)) {
    for (const name of await readDirNames(path.join(dir, source))) {
      if (LEFTOVER_RE.test(name)) out.push(path.join(dir, source, name));
    }
  }
  return out;
}

/** Removes leftovers; call only while holding the run lock (no snapshot is being written). */
export async function removeLeftovers(dir: string): Promise<string[]> {
  const found = await listLeftovers(dir);
  for (const p of found) await fs.promises.rm(p, { recursive: true, force: true });
  return found;
}

/** One file of a snapshot as the retention planner sees it. */
export interface FileUsage {
  /** device:inode, equal for hard links */
  key: string;
  bytes: number;
  /** hard links in total, anywhere on the volume */
  links: number;
}

/** The files inside a snapshot folder (data, schema, manifest) with their inodes. */
export async function snapshotFiles(snapshotDir: string): Promise<FileUsage[]> {
  const out: FileUsage[] = [];
  const walk = async (d: string): Promise<void> => {
    for (const e of await fs.promises.readdir(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else {
        const st = await fs.promises.lstat(p);
        out.push({ key: `${st.dev}:${st.ino}`, bytes: st.size, links: st.nlink });
      }
    }
  };
  await walk(snapshotDir);
  return out;
}
