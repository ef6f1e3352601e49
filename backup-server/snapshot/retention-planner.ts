/**
 * The retention plan, a pure function: which snapshots to delete and why.
 *  1. age: snapshots older than `retentionDays` (0 turns the rule off);
 *  2. free space: while the volume's free space (plus what the deletions so far free, minus the room
 *     wanted for the next snapshot) is below `minFreeBytes` or `minFreePercent`, the oldest snapshot of
 *     any source. Freed bytes are estimated from the files no remaining snapshot shares (hard links).
 * The newest snapshot of each source is never deleted.
 */
import { formatBytes } from '../../shared/units';
import type { FileUsage } from './catalog';
import type { DiskUsage } from './disk-probe';

export interface RetentionPolicy {
  retentionDays: number;
  minFreeBytes: number;
  minFreePercent: number;
}

export interface PlannedSnapshot {
  source: string;
  id: string;
  takenAt: Date;
  files: FileUsage[];
}

export type RetentionRule = 'age' | 'free-space';

export interface Deletion {
  source: string;
  id: string;
  rule: RetentionRule;
  reason: string;
  /** estimate of the space this deletion gives back */
  freedBytes: number;
}

export interface RetentionPlan {
  deletions: Deletion[];
  freeBytesBefore: number;
  /** estimated free space after the deletions (and before the reserved room is used) */
  freeBytesAfter: number;
  /** null when the free-space rule holds after the plan (with the reserved room taken) */
  shortfall: string | null;
}

export interface PlanInput {
  snapshots: PlannedSnapshot[];
  policy: RetentionPolicy;
  disk: DiskUsage;
  now: Date;
  /** room wanted for the next snapshot, counted as already used (default 0) */
  reserveBytes?: number;
}

export const DAY_MS = 86_400_000;

/** Why `freeBytes` breaks the free-space rule, or null when it holds. */
export function freeSpaceShortfall(
  freeBytes: number,
  totalBytes: number,
  policy: RetentionPolicy,
): string | null {
  if (freeBytes < policy.minFreeBytes) {
    return `free space ${formatBytes(Math.max(0, freeBytes))} is below minFreeBytes ${formatBytes(policy.minFreeBytes)}`;
  }
  const percent = totalBytes > 0 ? (freeBytes / totalBytes) * 100 : 100;
  if (percent < policy.minFreePercent) {
    return `free space ${percent.toFixed(1)} % is below minFreePercent ${policy.minFreePercent} %`;
  }
  return null;
}

/** Tracks which inodes the remaining snapshots still share, to estimate what a deletion frees. */
class SharedFiles {
  private readonly refs = new Map<string, { remaining: number; external: number; bytes: number }>();

  constructor(snapshots: PlannedSnapshot[]) {
    for (const s of snapshots)
      for (const f of s.files) {
        const r = this.refs.get(f.key) ?? { remaining: 0, external: f.links, bytes: f.bytes };
        r.remaining++;
        r.external--;
        this.refs.set(f.key, r);
      }
  }

  delete(s: PlannedSnapshot): number {
    let freed = 0;
    for (const f of s.files) {
      const r = this.refs.get(f.key);
      if (!r) continue;
      r.remaining--;
      if (r.remaining === 0 && r.external <= 0) freed += r.bytes;
    }
    return freed;
  }
}

const byAge = (a: PlannedSnapshot, b: PlannedSnapshot) =>
  a.takenAt.getTime() - b.takenAt.getTime() || (a.source < b.source ? -1 : a.source > b.source ? 1 : 0);

export function planRetention(input: PlanInput): RetentionPlan {
  const { policy, disk, now } = input;
  const reserve = input.reserveBytes ?? 0;
  const newest = new Map<string, PlannedSnapshot>();
  for (const s of input.snapshots) {
    const n = newest.get(s.source);
    if (!n || s.id > n.id) newest.set(s.source, s);
  }
  const shared = new SharedFiles(input.snapshots);
  const candidates = input.snapshots.filter((s) => newest.get(s.source) !== s).sort(byAge);
  const deletions: Deletion[] = [];
  let free = disk.freeBytes;
  const remove = (s: PlannedSnapshot, rule: RetentionRule, reason: string) => {
    const freedBytes = shared.delete(s);
    free += freedBytes;
    deletions.push({ source: s.source, id: s.id, rule, reason, freedBytes });
  };

  const kept: PlannedSnapshot[] = [];
  for (const s of candidates) {
    const ageDays = (now.getTime() - s.takenAt.getTime()) / DAY_MS;
    if (policy.retentionDays > 0 && ageDays > policy.retentionDays) {
      remove(s, 'age', `${ageDays.toFixed(1)} days old, older than retentionDays ${policy.retentionDays}`);
    } else kept.push(s);
  }
  const wanted = reserve > 0 ? ` after reserving ${formatBytes(reserve)} for the next snapshot` : '';
  for (const s of kept) {
    const why = freeSpaceShortfall(free - reserve, disk.totalBytes, policy);
    if (!why) break;
    remove(s, 'free-space', `${why}${wanted}; deleting the oldest snapshot`);
  }
  const left = freeSpaceShortfall(free - reserve, disk.totalBytes, policy);
  return {
    deletions,
    freeBytesBefore: disk.freeBytes,
    freeBytesAfter: free,
    shortfall: left ? `${left}${wanted}, and only the newest snapshot of each source is left` : null,
  };
}
