/**
 * The thin applier of the retention plan: removes leftover partial folders, then deletes one snapshot at a
 * time, re-measuring the free space and re-planning after each deletion. Deleting needs no free space: a
 * snapshot is renamed to a hidden `.<id>.deleting` folder (never served, cleared at start) and removed.
 * Call it only while holding the run lock.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Logger } from '../../shared/log';
import { parseSnapshotId } from '../../shared/snapshot/manifest';
import { formatBytes } from '../../shared/units';
import {
  type CatalogProblem,
  listLeftovers,
  listSnapshotIds,
  listSnapshots,
  removeLeftovers,
  snapshotFiles,
} from './catalog';
import type { DiskProbe, DiskUsage } from './disk-probe';
import { fsyncPath } from './durable-fs';
import {
  DAY_MS,
  type Deletion,
  freeSpaceShortfall,
  type PlannedSnapshot,
  planRetention,
  type RetentionPolicy,
} from './retention-planner';

export interface RotationOptions {
  dir: string;
  policy: RetentionPolicy;
  probe: DiskProbe;
  logger: Logger;
  now?: () => Date;
  dryRun?: boolean;
  /** room wanted for a snapshot about to be taken */
  reserveBytes?: number;
}

export interface RotationResult {
  dryRun: boolean;
  /** deleted (or, in a dry run, to be deleted), in order */
  deletions: Deletion[];
  /** leftover partial folders removed (or, in a dry run, to be removed) */
  leftovers: string[];
  freeBytesBefore: number;
  /** measured after the deletions; in a dry run, the estimate */
  freeBytesAfter: number;
  totalBytes: number;
  /** why the free-space rule still fails after rotation, or null */
  shortfall: string | null;
  problems: CatalogProblem[];
  policy: RetentionPolicy;
}

export async function plannedSnapshots(dir: string, problems?: CatalogProblem[]): Promise<PlannedSnapshot[]> {
  const list = await listSnapshots(dir, { problems });
  return Promise.all(
    list.map(async (s) => ({
      source: s.source,
      id: s.id,
      takenAt: parseSnapshotId(s.id),
      files: await snapshotFiles(s.path),
    })),
  );
}

/** Deletes one complete snapshot without needing free space; a crash midway leaves only a hidden folder. */
export async function deleteSnapshot(dir: string, source: string, id: string): Promise<void> {
  const sourceDir = path.join(dir, source);
  const doomed = path.join(sourceDir, `.${id}.deleting`);
  await fs.promises.rename(path.join(sourceDir, id), doomed);
  await fsyncPath(sourceDir);
  await fs.promises.rm(doomed, { recursive: true, force: true });
}

/**
 * A cheap first look from the folder names and one free-space reading: false when no snapshot is past
 * retentionDays and the free-space rule holds, so that the inodes of every file need not be read.
 */
async function mayDelete(opts: RotationOptions, disk: DiskUsage, now: Date): Promise<boolean> {
  if (freeSpaceShortfall(disk.freeBytes - (opts.reserveBytes ?? 0), disk.totalBytes, opts.policy))
    return true;
  if (opts.policy.retentionDays <= 0) return false;
  const cutoff = now.getTime() - opts.policy.retentionDays * DAY_MS;
  const seen = new Set<string>();
  for (const { source, id } of await listSnapshotIds(opts.dir)) {
    if (!seen.has(source))
      seen.add(source); // the newest of a source is never deleted
    else if (parseSnapshotId(id).getTime() < cutoff) return true;
  }
  return false;
}

export async function rotate(opts: RotationOptions): Promise<RotationResult> {
  const now = opts.now ?? (() => new Date());
  const dryRun = opts.dryRun ?? false;
  const leftovers = dryRun ? await listLeftovers(opts.dir) : await removeLeftovers(opts.dir);
  for (const p of leftovers)
    opts.logger.info(
      dryRun ? 'would remove a leftover partial folder' : 'removed a leftover partial folder',
      {
        path: p,
      },
    );
  const problems: CatalogProblem[] = [];
  const first = await opts.probe.measure(opts.dir);
  if (!(await mayDelete(opts, first, now()))) {
    return {
      dryRun,
      deletions: [],
      leftovers,
      freeBytesBefore: first.freeBytes,
      freeBytesAfter: first.freeBytes,
      totalBytes: first.totalBytes,
      shortfall: null,
      problems,
      policy: opts.policy,
    };
  }
  const planFor = async (disk = first) =>
    planRetention({
      snapshots: await plannedSnapshots(opts.dir, problems),
      policy: opts.policy,
      disk,
      now: now(),
      reserveBytes: opts.reserveBytes,
    });
  const result = (
    deletions: Deletion[],
    freeBytesAfter: number,
    shortfall: string | null,
  ): RotationResult => ({
    dryRun,
    deletions,
    leftovers,
    freeBytesBefore: first.freeBytes,
    freeBytesAfter,
    totalBytes: first.totalBytes,
    shortfall,
    problems,
    policy: opts.policy,
  });
  if (dryRun) {
    const plan = await planFor();
    for (const d of plan.deletions) opts.logger.info('would delete snapshot', { ...d });
    return result(plan.deletions, plan.freeBytesAfter, plan.shortfall);
  }
  const done: Deletion[] = [];
  let disk = first;
  for (;;) {
    problems.length = 0;
    const plan = await planFor(disk);
    const next = plan.deletions[0];
    if (!next) {
      for (const p of problems) opts.logger.warn('unreadable snapshot folder left alone', { ...p });
      if (plan.shortfall) opts.logger.warn('free space still low after rotation', { reason: plan.shortfall });
      return result(done, disk.freeBytes, plan.shortfall);
    }
    await deleteSnapshot(opts.dir, next.source, next.id);
    const after = await opts.probe.measure(opts.dir);
    done.push(next);
    opts.logger.info(`deleted snapshot ${next.source}/${next.id}: ${next.reason}`, {
      source: next.source,
      id: next.id,
      rule: next.rule,
      reason: next.reason,
      freeBytes: after.freeBytes,
      free: formatBytes(after.freeBytes),
    });
    disk = after;
  }
}
