/** Pure pieces of the snapshot code: maintenance window, data file names, link decisions, sequence merge. */
import { isInsideWindow } from '../../backup-server/snapshot/maintenance-window';
import { splitTableMinBytes } from '../../backup-server/snapshot/parallel-copy';
import { furtherPosition, type ReplicaTable } from '../../backup-server/snapshot/replica-contents';
import { copyStatement, pageRanges } from '../../backup-server/snapshot/table-copy';
import { fileNamePart, linkBaseProblem, planTables } from '../../backup-server/snapshot/table-plan';
import type { SnapshotManifest } from '../../shared/snapshot/manifest';

describe('isInsideWindow', () => {
  it.each([
    ['01:00', '05:00', '2026-11-22T03:00:00Z', 'UTC', true],
    ['01:00', '05:00', '2026-11-22T05:00:00Z', 'UTC', false],
    ['01:00', '05:00', '2026-11-22T00:59:00Z', 'UTC', false],
    ['22:00', '02:00', '2026-11-22T23:30:00Z', 'UTC', true],
    ['22:00', '02:00', '2026-11-22T01:59:00Z', 'UTC', true],
    ['22:00', '02:00', '2026-11-22T02:00:00Z', 'UTC', false],
    ['03:00', '03:00', '2026-11-22T12:00:00Z', 'UTC', true],
    ['01:00', '05:00', '2026-11-22T00:30:00Z', 'Europe/Berlin', true],
    ['01:00', '05:00', '2026-11-22T04:30:00Z', 'Europe/Berlin', false],
  ])('window %s–%s at %s (%s): %s', (start, end, at, tz, inside) => {
    expect(isInsideWindow(new Date(at), { start, end }, tz)).toBe(inside);
  });

  it('without a window every time is inside', () => {
    expect(isInsideWindow(new Date(), undefined)).toBe(true);
  });
});

const table = (name: string, lastChangeLsn: string | null, columns = ['id', 'val']): ReplicaTable => ({
  schema: 'public',
  name,
  columns,
  relationBytes: 0,
  lastChangeLsn,
});

function manifest(lsn: string, tables: { name: string; columns?: string[] }[]): SnapshotManifest {
  return {
    formatVersion: 1,
    id: '20261122T000000000Z',
    pgferryVersion: '0',
    pgMajor: 15,
    source: 's',
    systemIdentifier: '1',
    syncId: 'sync-1',
    appVersion: null,
    lsn,
    startedAt: '',
    finishedAt: '',
    schemaHash: null,
    schema: {
      pre: { file: 'schema-pre.sql', bytes: 0, sha256: '' },
      post: { file: 'schema-post.sql', bytes: 0, sha256: '' },
    },
    tables: tables.map((t) => ({
      schema: 'public',
      name: t.name,
      file: `data/public.${t.name}.copy.gz`,
      rows: 1,
      bytes: 1,
      sha256: '',
      linked: false,
      columns: t.columns ?? ['id', 'val'],
    })),
    sequences: [],
    totalBytes: 0,
  };
}

describe('planTables', () => {
  it('names data files unambiguously and safely', () => {
    expect(fileNamePart('public')).toBe('public');
    expect(fileNamePart('My Table')).toBe('My%20Table');
    expect(fileNamePart('a.b')).toBe('a%2Eb');
    expect(fileNamePart('../x')).toBe('%2E%2E%2Fx');
    expect(fileNamePart('été')).toBe('%C3%A9t%C3%A9');
    const plans = planTables([table(`${'x'.repeat(120)}a`, null), table(`${'x'.repeat(120)}b`, null)], null);
    expect(new Set(plans.map((p) => p.file)).size).toBe(2);
  });

  it('links a table only when its last change is at or before the previous LSN and its columns are the same', () => {
    const prev = manifest('0/2000', [
      { name: 'same' },
      { name: 'older' },
      { name: 'newer' },
      { name: 'none' },
      { name: 'cols' },
    ]);
    const plans = planTables(
      [
        table('same', '0/2000'),
        table('older', '0/1000'),
        table('newer', '0/2001'),
        table('none', null),
        table('cols', '0/1000', ['id', 'val', 'extra']),
        table('fresh', '0/1000'),
      ],
      prev,
    );
    expect(Object.fromEntries(plans.map((p) => [p.table.name, p.linkFrom !== null]))).toEqual({
      same: true,
      older: true,
      newer: false,
      none: false,
      cols: false,
      fresh: false,
    });
  });

  it('never links across a resync or another source', () => {
    const prev = manifest('0/2000', []);
    expect(linkBaseProblem(prev, { source: 's', systemIdentifier: '1', syncId: 'sync-1' })).toBeNull();
    expect(linkBaseProblem(prev, { source: 's', systemIdentifier: '1', syncId: 'sync-2' })).toMatch(
      /resynced/,
    );
    expect(linkBaseProblem(prev, { source: 's', systemIdentifier: '2', syncId: 'sync-1' })).toMatch(
      /identifier/,
    );
    expect(linkBaseProblem(null, { source: 's', systemIdentifier: '1', syncId: 'sync-1' })).toMatch(
      /no previous/,
    );
  });
});

describe('furtherPosition (sequence values: agent report vs the replica)', () => {
  const p = (value: bigint, isCalled = true) => ({ value, isCalled });
  it.each([
    ['higher wins when ascending', p(5n), p(9n), true, p(9n)],
    ['lower wins when descending', p(-5n), p(-9n), false, p(-9n)],
    ['called wins at equal values', p(7n, false), p(7n, true), true, p(7n, true)],
    ['a missing side gives the other', null, p(3n), true, p(3n)],
  ])('%s', (_name, a, b, ascending, expected) => {
    expect(furtherPosition(a, b, ascending)).toEqual(expected);
  });
});

describe('page ranges for a table split over several connections', () => {
  it('covers every page once, the last range open-ended for pages added since', () => {
    expect(pageRanges(10, 3)).toEqual([
      { fromPage: 0, toPage: 3 },
      { fromPage: 3, toPage: 6 },
      { fromPage: 6, toPage: null },
    ]);
    expect(pageRanges(1, 2)).toEqual([
      { fromPage: 0, toPage: 0 },
      { fromPage: 0, toPage: null },
    ]);
  });

  it('copies a range with the same columns as the whole-table COPY', () => {
    const t = { schema: 'public', name: 'My Table', columns: ['id', 'a"b'] };
    expect(copyStatement(t)).toBe('COPY "public"."My Table" ("id", "a""b") TO STDOUT');
    expect(copyStatement(t, { fromPage: 5, toPage: null })).toBe(
      `COPY (SELECT "id", "a""b" FROM "public"."My Table" WHERE ctid >= '(5,0)'::tid) TO STDOUT`,
    );
    expect(copyStatement(t, { fromPage: 0, toPage: 5 })).toContain(
      `WHERE ctid >= '(0,0)'::tid AND ctid < '(5,0)'::tid`,
    );
  });
});

describe('when a big table is split over the copy connections', () => {
  it('follows the config when it is set, whatever the cores', () => {
    expect(splitTableMinBytes(0, 1)).toBe(0);
    expect(splitTableMinBytes(1024, 2)).toBe(1024);
    expect(splitTableMinBytes(1024, 64)).toBe(1024);
  });

  it('unset, splits tables of 32 MiB and more on 4 cores or more, and never on fewer', () => {
    expect(splitTableMinBytes(undefined, 4)).toBe(32 * 1024 * 1024);
    expect(splitTableMinBytes(undefined, 16)).toBe(32 * 1024 * 1024);
    expect(splitTableMinBytes(undefined, 3)).toBe(Number.POSITIVE_INFINITY);
    expect(splitTableMinBytes(undefined, 2)).toBe(Number.POSITIVE_INFINITY);
  });
});
