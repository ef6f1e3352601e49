/**
 * What the FTP root shows, and nothing else:
 *
 *   /catalog.json                       virtual, every source's complete snapshots
 *   /<source>/                          a real folder with a valid source name
 *   /<source>/catalog.json              virtual, that source's complete snapshots
 *   /<source>/<id>/...                  a complete snapshot (see catalog.ts) and its files
 *
 * Dot-entries (partial snapshots included, even by exact name), folders that are not complete snapshots,
 * symlinked source or snapshot folders, anything whose real path leaves the root or lands on something
 * hidden, and anything that is neither a regular file nor a folder are invisible. Client paths are
 * resolved against the session's folder; ".." above the root, backslashes and control characters are refused.
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { isSnapshotId } from '../../shared/snapshot/manifest';
import { CATALOG_FILE, isSourceDirName, listSourceDirs, readCompleteManifest } from './catalog';

export type TreeNode =
  | { kind: 'directory'; clientPath: string; realPath: string; mtime: Date }
  | { kind: 'file'; clientPath: string; realPath: string; size: number; mtime: Date }
  | { kind: 'catalog'; clientPath: string; source: string | null };

export interface TreeChild {
  name: string;
  node: TreeNode;
}

function hasForbiddenChar(p: string): boolean {
  for (let i = 0; i < p.length; i++) {
    const c = p.charCodeAt(i);
    if (c < 0x20 || c === 0x7f || c === 0x5c /* backslash */) return true;
  }
  return false;
}

/**
 * Path segments below the FTP root for `clientPath` seen from `cwd`, or null when the path is refused:
 * backslashes, control characters, and ".." that would climb above the root ("CWD ../.." at "/" fails).
 */
export function clientSegments(cwd: string, clientPath: string | null | undefined): string[] | null {
  const input = clientPath === undefined || clientPath === null || clientPath === '' ? '.' : clientPath;
  if (hasForbiddenChar(input)) return null;
  const joined = input.startsWith('/') ? input : `${cwd}/${input}`;
  const out: string[] = [];
  for (const s of joined.split('/')) {
    if (s === '' || s === '.') continue;
    if (s !== '..') out.push(s);
    else if (out.pop() === undefined) return null;
  }
  return out;
}

export function toClientPath(segments: readonly string[]): string {
  return `/${segments.join('/')}`;
}

/** The structural rules, applied both to what the client asked and to where it really leads. */
function isVisibleShape(segments: readonly string[]): boolean {
  if (segments.length >= 1 && !isSourceDirName(segments[0])) return false;
  if (segments.length >= 2 && !isSnapshotId(segments[1])) return false;
  return segments.slice(2).every((s) => !s.startsWith('.'));
}

async function lstatOrNull(p: string) {
  try {
    return await fsp.lstat(p);
  } catch {
    return null;
  }
}

function isInside(root: string, real: string): boolean {
  return real === root || real.startsWith(root + path.sep);
}

export class SnapshotTree {
  /** @param root the snapshot folder; it may not exist yet (then the tree is empty) */
  constructor(private readonly root: string) {}

  private async realRoot(): Promise<string | null> {
    try {
      return await fsp.realpath(this.root);
    } catch {
      return null;
    }
  }

  /** The node at `segments`, or null when it does not exist or is not visible. */
  async resolve(segments: readonly string[]): Promise<TreeNode | null> {
    const clientPath = toClientPath(segments);
    if (segments.length === 1 && segments[0] === CATALOG_FILE)
      return { kind: 'catalog', clientPath, source: null };
    const root = await this.realRoot();
    if (root === null) {
      return segments.length === 0
        ? { kind: 'directory', clientPath, realPath: this.root, mtime: new Date(0) }
        : null;
    }
    const sourceCatalog = segments.length === 2 && segments[1] === CATALOG_FILE;
    if (!isVisibleShape(sourceCatalog ? [segments[0]] : segments)) return null;
    // Source and snapshot folders must be real folders, not symlinks.
    const folderDepth = sourceCatalog ? 1 : Math.min(2, segments.length);
    for (let depth = 1; depth <= folderDepth; depth++) {
      const st = await lstatOrNull(path.join(root, ...segments.slice(0, depth)));
      if (!st?.isDirectory()) return null;
    }
    if (sourceCatalog) return { kind: 'catalog', clientPath, source: segments[0] };
    if (segments.length >= 2 && !(await readCompleteManifest(root, segments[0], segments[1]))) return null;
    return this.resolveReal(root, segments, clientPath);
  }

  private async resolveReal(
    root: string,
    segments: readonly string[],
    clientPath: string,
  ): Promise<TreeNode | null> {
    let real: string;
    try {
      real = await fsp.realpath(path.join(root, ...segments));
    } catch {
      return null;
    }
    if (!isInside(root, real)) return null;
    const realSegments = path.relative(root, real).split(path.sep).filter(Boolean);
    if (!isVisibleShape(realSegments)) return null;
    const sameSnapshot =
      realSegments.length < 2 || (realSegments[0] === segments[0] && realSegments[1] === segments[1]);
    if (!sameSnapshot && !(await readCompleteManifest(root, realSegments[0], realSegments[1]))) return null;
    const st = await lstatOrNull(real);
    if (st?.isDirectory()) return { kind: 'directory', clientPath, realPath: real, mtime: st.mtime };
    if (st?.isFile()) {
      return { kind: 'file', clientPath, realPath: real, size: st.size, mtime: st.mtime };
    }
    return null;
  }

  /** The visible entries of the folder at `segments` (which must resolve to a directory), sorted by name. */
  async children(segments: readonly string[]): Promise<TreeChild[]> {
    const root = await this.realRoot();
    const catalog = (source: string | null): TreeChild => ({
      name: CATALOG_FILE,
      node: { kind: 'catalog', clientPath: toClientPath([...segments, CATALOG_FILE]), source },
    });
    if (root === null) return segments.length === 0 ? [catalog(null)] : [];
    let names: string[];
    if (segments.length === 0) {
      names = await listSourceDirs(root);
    } else {
      try {
        names = (await fsp.readdir(path.join(root, ...segments))).filter(
          (n) => !n.startsWith('.') && !(segments.length === 1 && n === CATALOG_FILE),
        );
      } catch {
        return [];
      }
    }
    const resolved = await Promise.all(
      names.map(async (name) => ({ name, node: await this.resolve([...segments, name]) })),
    );
    const visible = resolved.filter((c): c is TreeChild => c.node !== null);
    if (segments.length <= 1) visible.push(catalog(segments.length === 0 ? null : segments[0]));
    return visible.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }
}
