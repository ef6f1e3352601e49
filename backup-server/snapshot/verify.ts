/**
 * Re-checks a snapshot against its manifest: every file's size and SHA-256. A failure names the file.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { ManifestFile } from '../../shared/snapshot/manifest';
import { PgferryError } from '../../shared/errors';
import { readManifest, type SnapshotInfo } from './catalog';
import { eachLimited } from './each-limited';

export interface FileProblem {
  file: string;
  problem: string;
}

export interface VerifyResult {
  source: string;
  id: string;
  ok: boolean;
  /** files whose content was hashed */
  filesHashed: number;
  /** files checked by size only (hard links of files verified when written) */
  filesSizeChecked: number;
  bytesHashed: number;
  problems: FileProblem[];
}

const WHOLE_FILE_BYTES = 4 * 1024 * 1024;
const PARALLEL_FILES = 4;

/** SHA-256 of a file: small files read at once, big ones streamed (never whole in memory). */
export async function sha256OfFile(file: string, size?: number): Promise<string> {
  const hash = createHash('sha256');
  if (size !== undefined && size <= WHOLE_FILE_BYTES)
    return hash.update(await fs.promises.readFile(file)).digest('hex');
  await pipeline(fs.createReadStream(file, { highWaterMark: 1024 * 1024 }), hash);
  return hash.digest('hex');
}

async function checkFile(dir: string, f: ManifestFile, hashIt: boolean): Promise<string | null> {
  const p = path.join(dir, ...f.file.split('/'));
  let size: number;
  try {
    size = (await fs.promises.stat(p)).size;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'missing' : (e as Error).message;
  }
  if (size !== f.bytes) return `size ${size} bytes, manifest says ${f.bytes}`;
  if (!hashIt) return null;
  const actual = await sha256OfFile(p, size);
  return actual === f.sha256 ? null : `SHA-256 mismatch: manifest ${f.sha256}, file ${actual}`;
}

/**
 * Verifies `snap`. With `onlyFiles`, the other files are checked by size only (used right after writing,
 * where linked files are the previous snapshot's verified inodes); without it every file is hashed.
 */
export async function verifySnapshot(
  snap: SnapshotInfo,
  opts: { onlyFiles?: string[] } = {},
): Promise<VerifyResult> {
  const manifest = await readManifest(snap.path);
  const problems: FileProblem[] = [];
  if (manifest.id !== snap.id)
    problems.push({ file: 'manifest.json', problem: `id is ${manifest.id}, folder is ${snap.id}` });
  const only = opts.onlyFiles ? new Set(opts.onlyFiles) : null;
  const files: ManifestFile[] = [manifest.schema.pre, manifest.schema.post, ...manifest.tables];
  let filesHashed = 0;
  let filesSizeChecked = 0;
  let bytesHashed = 0;
  await eachLimited(files, PARALLEL_FILES, async (f) => {
    const hashIt = !only || only.has(f.file);
    const problem = await checkFile(snap.path, f, hashIt);
    if (problem) problems.push({ file: f.file, problem });
    if (hashIt) {
      filesHashed++;
      bytesHashed += f.bytes;
    } else filesSizeChecked++;
  });
  const order = new Map(files.map((f, i) => [f.file, i]));
  problems.sort((a, b) => (order.get(a.file) ?? -1) - (order.get(b.file) ?? -1));
  return {
    source: snap.source,
    id: snap.id,
    ok: problems.length === 0,
    filesHashed,
    filesSizeChecked,
    bytesHashed,
    problems,
  };
}

/** The error for a failed verification, naming the first bad file. */
export function corruptError(r: VerifyResult): PgferryError {
  const first = r.problems[0];
  const more = r.problems.length > 1 ? ` (and ${r.problems.length - 1} more)` : '';
  return new PgferryError(
    'SNAPSHOT_CORRUPT',
    `snapshot ${r.source}/${r.id}: ${first.file}: ${first.problem}${more}`,
    { details: { problems: r.problems } },
  );
}
