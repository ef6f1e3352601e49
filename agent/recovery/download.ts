/**
 * Downloading a snapshot into a local work folder `<workDir>/<source>/<id>/`: files already complete and
 * matching their SHA-256 are kept, a partial file (`<name>.part`) is resumed where it stopped, transient
 * failures reconnect and resume, and every file is checked against the manifest before the download counts
 * as done. Nothing is restored from a file that did not pass.
 */
import { createHash, type Hash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { PgferryError, isPgferryError } from '../../shared/errors';
import type { Logger } from '../../shared/log';
import { MANIFEST_FILE, type SnapshotManifest } from '../../shared/snapshot/manifest';
import { formatBytes } from '../../shared/units';
import { ChecksumWriter, hashFile } from './checksum';
import { isPermanentFtpError } from './ftp-source';
import { parseManifest, snapshotFiles } from './manifest-reader';
import { Progress, type ProgressOutput } from './progress';
import type { SnapshotSource } from './source';

const MAX_MANIFEST_BYTES = 64 * 1024 * 1024;

/** $XDG_CACHE_HOME/pgferry/recover when set, else /var/tmp/pgferry-recover (survives a reboot, unlike /tmp). */
export function defaultWorkDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.XDG_CACHE_HOME) return path.join(env.XDG_CACHE_HOME, 'pgferry', 'recover');
  return path.join(os.platform() === 'win32' ? os.tmpdir() : '/var/tmp', 'pgferry-recover');
}

export function snapshotWorkDir(workDir: string, source: string, id: string): string {
  return path.join(workDir, source, id);
}

/**
 * Fetches and checks the manifest and stores it in the work folder. A different manifest already stored there
 * (a folder left from another snapshot of the same id) makes the folder start over.
 */
export async function fetchManifest(
  src: SnapshotSource,
  entry: { source: string; id: string },
  workDir: string,
): Promise<{ manifest: SnapshotManifest; dir: string }> {
  const remote = `${entry.source}/${entry.id}/${MANIFEST_FILE}`;
  const text = await src.readText(remote, MAX_MANIFEST_BYTES);
  if (text === null) {
    throw new PgferryError('SNAPSHOT_NOT_FOUND', `${remote} is not on ${src.description}`, {
      hint: 'the snapshot may have been rotated away: list the snapshots again with --list and pick another',
    });
  }
  const manifest = parseManifest(text, entry);
  const dir = snapshotWorkDir(workDir, entry.source, entry.id);
  const local = path.join(dir, MANIFEST_FILE);
  const old = await fs.promises.readFile(local, 'utf8').catch(() => null);
  if (old !== null && old !== text) await fs.promises.rm(dir, { recursive: true, force: true });
  await fs.promises.mkdir(dir, { recursive: true });
  if (old !== text) {
    await fs.promises.writeFile(`${local}.tmp`, text);
    await fs.promises.rename(`${local}.tmp`, local);
  }
  return { manifest, dir };
}

export interface DownloadOptions {
  src: SnapshotSource;
  manifest: SnapshotManifest;
  /** the snapshot's own work folder (from fetchManifest) */
  dir: string;
  progressOut?: ProgressOutput | null;
  plainProgressIntervalMs?: number;
  logger?: Logger;
  /** reconnect-and-resume attempts per file after a transient failure */
  retries?: number;
  retryDelayMs?: number;
  signal?: AbortSignal;
  /** called with the bytes that arrived in this run so far (tests interrupt downloads with it) */
  onBytes?: (transferredThisRun: number) => void;
}

export interface DownloadResult {
  dir: string;
  totalBytes: number;
  /** bytes that came over the network in this run */
  transferredBytes: number;
  filesKept: number;
  filesResumed: number;
  seconds: number;
}

interface FileSpec {
  file: string;
  bytes: number;
  sha256: string;
}

async function sizeOf(p: string): Promise<number | null> {
  return fs.promises.stat(p).then(
    (s) => s.size,
    () => null,
  );
}

async function freeBytes(dir: string): Promise<number | null> {
  try {
    const s = await fs.promises.statfs(dir);
    return s.bavail * s.bsize;
  } catch {
    return null;
  }
}

/** Downloads every file of the snapshot and checks each one against the manifest. */
export async function downloadSnapshot(opts: DownloadOptions): Promise<DownloadResult> {
  const started = Date.now();
  const { manifest, dir } = opts;
  const files = snapshotFiles(manifest);
  const totalBytes = files.reduce((n, f) => n + f.bytes, 0);

  // keep complete, matching files; measure what is left
  const todo: { spec: FileSpec; have: number }[] = [];
  let kept = 0;
  let keptBytes = 0;
  for (const spec of files) {
    const final = path.join(dir, spec.file);
    const size = await sizeOf(final);
    if (size !== null) {
      if (size === spec.bytes && (await hashFile(final)).digest('hex') === spec.sha256) {
        kept++;
        keptBytes += spec.bytes;
        continue;
      }
      await fs.promises.rm(final, { force: true });
    }
    const part = await sizeOf(`${final}.part`);
    todo.push({ spec, have: part !== null && part <= spec.bytes ? part : 0 });
  }
  const needed = todo.reduce((n, t) => n + t.spec.bytes - t.have, 0);
  const free = await freeBytes(dir);
  if (free !== null && free < needed) {
    throw new PgferryError(
      'DISK_FULL',
      `the work folder ${dir} has ${formatBytes(free)} free, the download needs ${formatBytes(needed)} more`,
      { hint: 'free space there, or pass --work-dir with a folder on a bigger volume' },
    );
  }

  const progress = opts.progressOut
    ? new Progress({ totalBytes, out: opts.progressOut, plainIntervalMs: opts.plainProgressIntervalMs })
    : null;
  progress?.skip(keptBytes);
  let transferred = 0;
  const onBytes = (n: number) => {
    transferred += n;
    progress?.add(n);
    opts.onBytes?.(transferred);
  };
  let resumed = 0;
  for (const t of todo) {
    progress?.skip(t.have);
    progress?.setFile(t.spec.file);
    if (t.have > 0) resumed++;
    await downloadFile(opts, t.spec, onBytes, (n) => progress?.skip(n));
  }
  progress?.finish();
  return {
    dir,
    totalBytes,
    transferredBytes: transferred,
    filesKept: kept,
    filesResumed: resumed,
    seconds: (Date.now() - started) / 1000,
  };
}

/** One file: resume the .part, retry transient failures, verify, rename into place. */
async function downloadFile(
  opts: DownloadOptions,
  spec: FileSpec,
  onBytes: (n: number) => void,
  uncount: (negativeBytes: number) => void,
): Promise<void> {
  const final = path.join(opts.dir, spec.file);
  const part = `${final}.part`;
  await fs.promises.mkdir(path.dirname(final), { recursive: true });
  const remote = `${opts.manifest.source}/${opts.manifest.id}/${spec.file}`;
  const retries = opts.retries ?? 5;
  let failures = 0;
  let restartedClean = false;
  for (;;) {
    let have = (await sizeOf(part)) ?? 0;
    if (have > spec.bytes) {
      await fs.promises.rm(part, { force: true });
      have = 0;
    }
    const hash: Hash = have > 0 ? await hashFile(part) : createHash('sha256');
    if (have < spec.bytes) {
      const writer = new ChecksumWriter(part, have > 0, hash, onBytes);
      const onAbort = () => opts.src.abort();
      opts.signal?.addEventListener('abort', onAbort);
      try {
        if (opts.signal?.aborted) throw opts.signal.reason;
        await opts.src.download(remote, writer, have);
        await writer.fileClosed;
      } catch (e) {
        await writer.shut();
        if (opts.signal?.aborted) {
          throw new PgferryError('DOWNLOAD_FAILED', `download of ${remote} interrupted`, { cause: e });
        }
        if (isPgferryError(e) && e.code !== 'FTP_UNAVAILABLE') throw e;
        if ((e as NodeJS.ErrnoException).code === 'ENOSPC') {
          throw new PgferryError('DISK_FULL', `the work folder ${opts.dir} is full`, {
            cause: e,
            hint: 'free space there, or pass --work-dir with a folder on a bigger volume; the download resumes',
          });
        }
        if (isPermanentFtpError(e)) {
          throw new PgferryError(
            'SNAPSHOT_NOT_FOUND',
            `${remote} cannot be read from ${opts.src.description}: ${(e as Error).message}`,
            {
              cause: e,
              hint: 'the snapshot may have been rotated away: list the snapshots again with --list and pick another',
            },
          );
        }
        failures++;
        if (failures > retries) {
          throw new PgferryError(
            'DOWNLOAD_FAILED',
            `download of ${remote} failed ${failures} times, last: ${(e as Error).message ?? String(e)}`,
            { cause: e },
          );
        }
        const wait = Math.min(30_000, (opts.retryDelayMs ?? 1000) * 2 ** (failures - 1));
        opts.logger?.warn(`download of ${remote} failed (${(e as Error).message}); resuming in ${wait} ms`);
        await delay(wait, undefined, { signal: opts.signal }).catch(() => undefined);
        continue;
      } finally {
        opts.signal?.removeEventListener('abort', onAbort);
      }
    }
    const size = (await sizeOf(part)) ?? 0;
    const digest = hash.digest('hex');
    if (size === spec.bytes && digest === spec.sha256) {
      await fs.promises.rename(part, final);
      return;
    }
    await fs.promises.rm(part, { force: true });
    // a resumed file may carry a bad tail from an earlier crash: fetch it once more from the start
    if (!restartedClean && have > 0) {
      restartedClean = true;
      uncount(-size);
      opts.logger?.warn(
        `${spec.file} did not match its checksum after resuming; downloading it again from the start`,
      );
      continue;
    }
    throw new PgferryError(
      'SNAPSHOT_CORRUPT',
      `${remote} does not match the manifest: ${size} bytes with sha256 ${digest}, expected ${spec.bytes} bytes with sha256 ${spec.sha256}`,
      {
        hint: 'nothing was restored; pick another snapshot (--list), and on the backup server run pgferry snapshot verify on this one',
        details: { file: spec.file },
      },
    );
  }
}
