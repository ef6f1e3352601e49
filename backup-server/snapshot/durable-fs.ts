/**
 * Durable file operations for snapshots and state files: fsync of files and folders, and atomic writes
 * (temporary name, fsync, rename, fsync of the folder).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { eachLimited } from './each-limited';

/** Flushes a file's or a folder's contents (a folder's entries: created, renamed, linked names) to disk. */
export async function fsyncPath(p: string): Promise<void> {
  const fh = await fs.promises.open(p, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Flushes many files at once: concurrent fsyncs share the file system's journal commits, which is much
 * faster than one after the other.
 */
export async function fsyncAll(paths: string[], concurrency = 8): Promise<void> {
  await eachLimited(paths, concurrency, (p) => fsyncPath(p));
}

/** Writes `data` to `file` so that a reader sees either the old or the new content, never a torn one. */
export async function writeFileAtomic(file: string, data: string | Buffer): Promise<void> {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  const fh = await fs.promises.open(tmp, 'w');
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await fs.promises.rename(tmp, file);
  } catch (e) {
    await fs.promises.rm(tmp, { force: true });
    throw e;
  }
  await fsyncPath(path.dirname(file));
}

export async function exists(p: string): Promise<boolean> {
  try {
    await fs.promises.lstat(p);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw e;
  }
}
