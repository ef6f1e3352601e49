/** The retention planner, table-driven: age rule, free-space rule, shared hard links, the newest kept. */
import { formatSnapshotId } from '../../shared/snapshot/manifest';
import {
  type PlannedSnapshot,
  planRetention,
  type RetentionPolicy,
} from '../../backup-server/snapshot/retention-planner';

const NOW = new Date('2026-11-22T12:00:00Z');
const DAY = 86_400_000;
const GiB = 1024 ** 3;

interface Spec {
  src: string;
  daysAgo: number;
  /** [inode key, bytes, total links (default: how many snapshots of the case hold it)] */
  files: [string, number, number?][];
}

function snapshots(specs: Spec[]): PlannedSnapshot[] {
  const holders = new Map<string, number>();
  for (const s of specs) for (const [k] of s.files) holders.set(k, (holders.get(k) ?? 0) + 1);
  return specs.map((s) => {
    const takenAt = new Date(NOW.getTime() - s.daysAgo * DAY);
    return {
      source: s.src,
      id: formatSnapshotId(takenAt),
      takenAt,
      files: s.files.map(([key, bytes, links]) => ({ key, bytes, links: links ?? holders.get(key)! })),
    };
  });
}

const policy = (p: Partial<RetentionPolicy> = {}): RetentionPolicy => ({
  retentionDays: 14,
  minFreeBytes: 10 * GiB,
  minFreePercent: 10,
  ...p,
});

const roomy = { freeBytes: 500 * GiB, totalBytes: 1000 * GiB };

interface Case {
  name: string;
  specs: Spec[];
  policy?: Partial<RetentionPolicy>;
  disk?: { freeBytes: number; totalBytes: number };
  reserveBytes?: number;
  /** expected deletions as "src@daysAgo:rule" in order, and the estimated bytes freed */
  deletes: string[];
  freed?: number;
  shortfall?: RegExp | null;
}

const cases: Case[] = [
  {
    name: 'deletes nothing when every snapshot is young and space is plenty',
    specs: [
      { src: 'a', daysAgo: 3, files: [['1', 100]] },
      { src: 'a', daysAgo: 1, files: [['2', 100]] },
    ],
    deletes: [],
    shortfall: null,
  },
  {
    name: 'deletes snapshots older than retentionDays, oldest first, per source',
    specs: [
      { src: 'a', daysAgo: 30, files: [['1', 100]] },
      { src: 'b', daysAgo: 20, files: [['2', 100]] },
      { src: 'a', daysAgo: 15, files: [['3', 100]] },
      { src: 'a', daysAgo: 2, files: [['4', 100]] },
      { src: 'b', daysAgo: 1, files: [['5', 100]] },
    ],
    deletes: ['a@30:age', 'b@20:age', 'a@15:age'],
    freed: 300,
  },
  {
    name: 'keeps the newest snapshot of a source even when it is older than retentionDays',
    specs: [
      { src: 'a', daysAgo: 40, files: [['1', 100]] },
      { src: 'a', daysAgo: 30, files: [['2', 100]] },
      { src: 'b', daysAgo: 50, files: [['3', 100]] },
    ],
    deletes: ['a@40:age'],
  },
  {
    name: 'retentionDays 0 turns the age rule off',
    specs: [
      { src: 'a', daysAgo: 400, files: [['1', 100]] },
      { src: 'a', daysAgo: 300, files: [['2', 100]] },
    ],
    policy: { retentionDays: 0 },
    deletes: [],
  },
  {
    name: 'below minFreeBytes deletes the oldest of any source until the rule holds',
    specs: [
      { src: 'a', daysAgo: 5, files: [['1', 3 * GiB]] },
      { src: 'b', daysAgo: 4, files: [['2', 3 * GiB]] },
      { src: 'a', daysAgo: 3, files: [['3', 3 * GiB]] },
      { src: 'b', daysAgo: 2, files: [['4', 3 * GiB]] },
      { src: 'a', daysAgo: 1, files: [['5', 3 * GiB]] },
    ],
    policy: { minFreePercent: 0 },
    disk: { freeBytes: 5 * GiB, totalBytes: 100 * GiB },
    deletes: ['a@5:free-space', 'b@4:free-space'],
    freed: 6 * GiB,
    shortfall: null,
  },
  {
    name: 'below minFreePercent deletes the oldest until the percentage holds',
    specs: [
      { src: 'a', daysAgo: 3, files: [['1', 5 * GiB]] },
      { src: 'a', daysAgo: 2, files: [['2', 5 * GiB]] },
      { src: 'a', daysAgo: 1, files: [['3', 5 * GiB]] },
    ],
    policy: { minFreeBytes: 0, minFreePercent: 15 },
    disk: { freeBytes: 12 * GiB, totalBytes: 100 * GiB },
    deletes: ['a@3:free-space'],
    shortfall: null,
  },
  {
    name: 'age deletions count toward the free space before the free-space rule picks more',
    specs: [
      { src: 'a', daysAgo: 20, files: [['1', 6 * GiB]] },
      { src: 'a', daysAgo: 5, files: [['2', 6 * GiB]] },
      { src: 'a', daysAgo: 1, files: [['3', 6 * GiB]] },
    ],
    policy: { minFreePercent: 0 },
    disk: { freeBytes: 5 * GiB, totalBytes: 100 * GiB },
    deletes: ['a@20:age'],
    freed: 6 * GiB,
  },
  {
    name: 'a file hard-linked into a later snapshot is freed only with the last snapshot holding it',
    specs: [
      {
        src: 'a',
        daysAgo: 3,
        files: [
          ['shared', 4 * GiB],
          ['u1', 1 * GiB],
        ],
      },
      {
        src: 'a',
        daysAgo: 2,
        files: [
          ['shared', 4 * GiB],
          ['u2', 1 * GiB],
        ],
      },
      { src: 'a', daysAgo: 1, files: [['u3', 1 * GiB]] },
    ],
    policy: { minFreePercent: 0 },
    disk: { freeBytes: 8 * GiB, totalBytes: 100 * GiB },
    deletes: ['a@3:free-space', 'a@2:free-space'],
    freed: 6 * GiB,
    shortfall: null,
  },
  {
    name: 'a file with links outside the snapshots is never counted as freed',
    specs: [
      { src: 'a', daysAgo: 2, files: [['ext', 4 * GiB, 2]] },
      { src: 'a', daysAgo: 1, files: [['u', 1 * GiB]] },
    ],
    policy: { minFreePercent: 0 },
    disk: { freeBytes: 9 * GiB, totalBytes: 100 * GiB },
    deletes: ['a@2:free-space'],
    freed: 0,
    shortfall: /below minFreeBytes 10\.0 GiB, and only the newest snapshot of each source is left$/,
  },
  {
    name: 'never deletes the newest snapshot of a source, even when the free-space rule cannot be met',
    specs: [
      { src: 'a', daysAgo: 2, files: [['1', GiB]] },
      { src: 'b', daysAgo: 1, files: [['2', GiB]] },
    ],
    disk: { freeBytes: GiB, totalBytes: 100 * GiB },
    deletes: [],
    shortfall: /^free space 1\.0 GiB is below minFreeBytes 10\.0 GiB/,
  },
  {
    name: 'room reserved for the next snapshot counts as already used',
    specs: [
      { src: 'a', daysAgo: 2, files: [['1', 8 * GiB]] },
      { src: 'a', daysAgo: 1, files: [['2', 8 * GiB]] },
    ],
    policy: { minFreePercent: 0 },
    disk: { freeBytes: 12 * GiB, totalBytes: 100 * GiB },
    reserveBytes: 8 * GiB,
    deletes: ['a@2:free-space'],
    shortfall: null,
  },
];

describe('planRetention', () => {
  it.each(cases)('$name', (c) => {
    const snaps = snapshots(c.specs);
    const plan = planRetention({
      snapshots: snaps,
      policy: policy(c.policy),
      disk: c.disk ?? roomy,
      now: NOW,
      reserveBytes: c.reserveBytes,
    });
    const label = (id: string) => {
      const i = snaps.findIndex((s) => s.id === id);
      return `${c.specs[i].src}@${c.specs[i].daysAgo}`;
    };
    expect(plan.deletions.map((d) => `${label(d.id)}:${d.rule}`)).toEqual(c.deletes);
    if (c.freed !== undefined) expect(plan.freeBytesAfter - plan.freeBytesBefore).toBe(c.freed);
    if (c.shortfall === null) expect(plan.shortfall).toBeNull();
    else if (c.shortfall) expect(plan.shortfall).toMatch(c.shortfall);
    for (const d of plan.deletions) expect(d.reason.length).toBeGreaterThan(10);
  });

  it('is pure: the same input gives the same plan and the input is not changed', () => {
    const snaps = snapshots([
      { src: 'a', daysAgo: 20, files: [['1', 100]] },
      { src: 'a', daysAgo: 1, files: [['2', 100]] },
    ]);
    const copy = JSON.stringify(snaps);
    const input = { snapshots: snaps, policy: policy(), disk: roomy, now: NOW };
    expect(planRetention(input)).toEqual(planRetention(input));
    expect(JSON.stringify(snaps)).toBe(copy);
  });
});
