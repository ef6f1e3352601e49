import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PassThrough } from 'node:stream';
import { chooseSnapshot, formatCatalogTable, parseCatalog } from '../../agent/recovery/catalog';
import { defaultWorkDir } from '../../agent/recovery/download';
import { isIndexBuild, parseDumpScript } from '../../agent/recovery/dump-script';
import { isSafeRelativePath, parseManifest } from '../../agent/recovery/manifest-reader';
import { checkAppVersion, checkPgMajor, checkTargetEmpty } from '../../agent/recovery/preflight';
import { formatDuration, Progress } from '../../agent/recovery/progress';
import { ask, pickSnapshot } from '../../agent/recovery/prompt';
import { isPgferryError } from '../../shared/errors';
import type { CatalogEntry } from '../../shared/snapshot/manifest';

function entry(id: string, source = 'monitoring', over: Partial<CatalogEntry> = {}): CatalogEntry {
  return {
    id,
    source,
    finishedAt: `${id.slice(0, 4)}-${id.slice(4, 6)}-${id.slice(6, 8)}T03:00:00.000Z`,
    lsn: '0/16B3748',
    totalBytes: 1536,
    appVersion: '5.2.1',
    pgMajor: 15,
    ...over,
  };
}

const DUMP = `--
-- PostgreSQL database dump
--

\\restrict abc

SET statement_timeout = 0;
SELECT pg_catalog.set_config('search_path', '', false);

SET default_tablespace = '';

--
-- Name: t t_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.t
    ADD CONSTRAINT t_pkey PRIMARY KEY (id);


SET default_tablespace = fast;

--
-- Name: t_v_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX t_v_idx ON public.t USING btree (v);


--
-- Name: u u_t_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.u
    ADD CONSTRAINT u_t_fkey FOREIGN KEY (t) REFERENCES public.t(id);


--
-- PostgreSQL database dump complete
--

\\unrestrict abc
`;

describe('dump scripts', () => {
  it('cuts a pg_dump script into its entries, drops psql restrict lines and moves SET lines to the entry after them', () => {
    const s = parseDumpScript(DUMP);
    expect(s.preamble).toContain("set_config('search_path'");
    expect(s.preamble).not.toContain('restrict');
    expect(s.entries.map((e) => [e.type, e.name])).toEqual([
      ['CONSTRAINT', 't t_pkey'],
      ['INDEX', 't_v_idx'],
      ['FK CONSTRAINT', 'u u_t_fkey'],
    ]);
    expect(s.entries[0].sql).not.toContain('fast');
    expect(s.entries[1].sql.trimStart().startsWith('SET default_tablespace = fast;')).toBe(true);
    expect(s.entries[2].sql).not.toContain('unrestrict');
    expect(s.entries.filter(isIndexBuild).map((e) => e.name)).toEqual(['t t_pkey', 't_v_idx']);
  });

  it('keeps a script without entry headers whole, as its preamble', () => {
    expect(parseDumpScript('CREATE TABLE x (a int);\n')).toEqual({
      preamble: 'CREATE TABLE x (a int);\n',
      entries: [],
    });
  });
});

describe('manifest paths', () => {
  it.each([
    ['tables/0001-public.t.copy.gz', true],
    ['schema-pre.sql', true],
    ['../etc/passwd', false],
    ['tables/../../x', false],
    ['/etc/passwd', false],
    ['tables//x', false],
    ['tables\\x', false],
    ['manifest.json', false],
    ['tables/a\nb', false],
  ])('%j is safe: %s', (p, ok) => {
    expect(isSafeRelativePath(p)).toBe(ok);
  });

  it('a manifest whose table file climbs out of the snapshot folder is refused as corrupt', () => {
    const m = {
      formatVersion: 1,
      id: '20261122T031500123Z',
      pgferryVersion: '0.1.0',
      pgMajor: 15,
      source: 'monitoring',
      systemIdentifier: '1',
      syncId: 's',
      appVersion: null,
      lsn: '0/1',
      startedAt: '',
      finishedAt: '',
      schemaHash: null,
      schema: {
        pre: { file: 'schema-pre.sql', bytes: 1, sha256: 'a'.repeat(64) },
        post: { file: 'schema-post.sql', bytes: 1, sha256: 'a'.repeat(64) },
      },
      tables: [
        {
          schema: 'public',
          name: 't',
          rows: 1,
          linked: false,
          file: '../../../root/.bashrc',
          bytes: 1,
          sha256: 'a'.repeat(64),
        },
      ],
      sequences: [],
      totalBytes: 3,
    };
    expect(() => parseManifest(JSON.stringify(m), { id: m.id, source: 'monitoring' })).toThrow(
      /tables\.0\.file/,
    );
    try {
      parseManifest(JSON.stringify({ ...m, formatVersion: 7 }), { id: m.id, source: 'monitoring' });
      throw new Error('not refused');
    } catch (e) {
      expect(isPgferryError(e, 'RECOVERY_REFUSED')).toBe(true);
      expect((e as Error).message).toMatch(/manifest format 7; pgferry .* reads format 1 only/);
    }
  });
});

describe('catalog', () => {
  const a = entry('20261120T030000000Z');
  const b = entry('20261121T030000000Z');
  it('reads the server catalog document, a bare array, and refuses what is no catalog', () => {
    expect(
      parseCatalog(JSON.stringify({ formatVersion: 1, generatedAt: 'x', source: null, snapshots: [b, a] })),
    ).toEqual([b, a]);
    expect(
      parseCatalog(JSON.stringify({ formatVersion: 1, generatedAt: 'x', source: null, snapshots: [] })),
    ).toEqual([]);
    expect(parseCatalog(JSON.stringify([a]))).toEqual([a]);
    expect(parseCatalog('<html>')).toBeNull();
    expect(parseCatalog(JSON.stringify({ hello: ['world'] }))).toBeNull();
  });

  it('chooses by id or the newest, and asks for --source when several sources have snapshots', () => {
    expect(chooseSnapshot([b, a], { latest: true }, 'srv')).toBe(b);
    expect(chooseSnapshot([b, a], { snapshotId: a.id }, 'srv')).toBe(a);
    expect(() => chooseSnapshot([b, a], { snapshotId: '20991231T000000000Z' }, 'srv')).toThrow(
      /not on srv .*newest: 20261121T030000000Z/,
    );
    expect(() =>
      chooseSnapshot([b, entry('20261119T030000000Z', 'billing')], { latest: true }, 'srv'),
    ).toThrow(/several sources \(monitoring, billing\)/);
    expect(() => chooseSnapshot([], { latest: true }, 'srv')).toThrow(/no complete snapshot on srv/);
  });

  it('lists id, source, finished at, LSN, size, application version and PostgreSQL major in aligned columns', () => {
    const lines = formatCatalogTable([
      b,
      entry('20261120T030000000Z', 'monitoring', { appVersion: null }),
    ]).split('\n');
    expect(lines[0]).toMatch(/^#\s+ID\s+SOURCE\s+FINISHED AT \(UTC\)\s+LSN\s+SIZE\s+APP VERSION\s+PG$/);
    expect(lines[1]).toMatch(
      /^1\s+20261121T030000000Z\s+monitoring\s+2026-11-21 03:00:00\s+0\/16B3748\s+1\.5 KiB\s+5\.2\.1\s+15$/,
    );
    expect(lines[2]).toMatch(/\s-\s+15$/);
  });
});

describe('preflight', () => {
  const facts = {
    database: 'monitoring',
    exists: true,
    userTables: ['public.a', 'public.b'],
    serverMajor: 15,
  };
  it('refuses an application version mismatch naming both versions', () => {
    expect(() => checkAppVersion({ id: 'S', appVersion: '5.2.1' }, '6.0.0')).toThrow(
      'snapshot S was made for application version "5.2.1", but this installation is application version "6.0.0" (--app-version)',
    );
    expect(() => checkAppVersion({ id: 'S', appVersion: '5.2.1' }, '5.2.1')).not.toThrow();
    expect(() => checkAppVersion({ id: 'S', appVersion: '5.2.1' }, undefined)).not.toThrow();
  });
  it('refuses a snapshot from a newer PostgreSQL major, not from an older one', () => {
    expect(() => checkPgMajor({ id: 'S', pgMajor: 16 }, 15)).toThrow(
      /PostgreSQL 16, but the target server runs PostgreSQL 15/,
    );
    expect(() => checkPgMajor({ id: 'S', pgMajor: 14 }, 15)).not.toThrow();
  });
  it('refuses a target with tables unless forced, and names them', () => {
    expect(() => checkTargetEmpty(facts, false)).toThrow(
      /"monitoring" is not empty: it has 2 user tables \(public\.a, public\.b\)/,
    );
    expect(() => checkTargetEmpty(facts, true)).not.toThrow();
    expect(() => checkTargetEmpty({ ...facts, userTables: [] }, false)).not.toThrow();
  });
});

describe('progress', () => {
  it('prints plain lines at the interval when not on a TTY, with rate and ETA', () => {
    let now = 0;
    const out: string[] = [];
    const p = new Progress({
      totalBytes: 100 * 1024 * 1024,
      out: { write: (s: string) => out.push(s) },
      plainIntervalMs: 10_000,
      now: () => now,
    });
    p.skip(20 * 1024 * 1024);
    now = 1000;
    p.add(10 * 1024 * 1024); // first line
    now = 5000;
    p.add(10 * 1024 * 1024); // within the interval: silent
    now = 12_000;
    p.add(10 * 1024 * 1024);
    p.finish();
    expect(out).toHaveLength(3);
    expect(out[0]).toBe('download 30.0 MiB / 100.0 MiB (30%)  10.0 MiB/s  ETA 0:07\n');
    expect(out[1]).toBe('download 50.0 MiB / 100.0 MiB (50%)  2.5 MiB/s  ETA 0:20\n');
    expect(out.every((l) => l.endsWith('\n') && !l.includes('\r'))).toBe(true);
  });

  it('rewrites one line in place on a TTY and ends it at the finish', () => {
    let now = 0;
    const out: string[] = [];
    const p = new Progress({
      totalBytes: 1000,
      out: { write: (s: string) => out.push(s), isTTY: true },
      now: () => now,
    });
    now = 1000;
    p.add(500);
    now = 2000;
    p.add(500);
    p.finish();
    expect(out.every((l) => l.startsWith('\r'))).toBe(true);
    expect(out.at(-1)?.endsWith('\n')).toBe(true);
    expect(formatDuration(3725)).toBe('1:02:05');
  });
});

describe('work folder', () => {
  it('is under XDG_CACHE_HOME when set, else /var/tmp', () => {
    expect(defaultWorkDir({ XDG_CACHE_HOME: '/home/op/.cache' })).toBe('/home/op/.cache/pgferry/recover');
    expect(defaultWorkDir({})).toBe(path.join('/var/tmp', 'pgferry-recover'));
    expect(fs.existsSync(os.tmpdir())).toBe(true);
  });
});

describe('prompts', () => {
  function term(answers: string[]) {
    const input = new PassThrough();
    const output = new PassThrough();
    let shown = '';
    output.on('data', (c: Buffer) => {
      shown += c.toString();
      if (/: $/.test(shown) && answers.length) {
        const a = answers.shift();
        setImmediate(() => input.write(`${a}\n`));
      }
    });
    return { io: { input, output }, shown: () => shown };
  }

  it('asks for the password without echoing it', async () => {
    const t = term(['s3cret']);
    expect(await ask(t.io, 'FTP password: ', true)).toBe('s3cret');
    expect(t.shown()).toContain('FTP password: ');
    expect(t.shown()).not.toContain('s3cret');
  });

  it('shows the snapshots and takes a number, Enter for the newest, and asks again after a wrong answer', async () => {
    const list = [entry('20261121T030000000Z'), entry('20261120T030000000Z')];
    const t = term(['7', '2']);
    expect(await pickSnapshot(t.io, list)).toBe(list[1]);
    expect(t.shown()).toContain('"7" is not a number from 1 to 2');
    expect(t.shown()).toMatch(/1\s+20261121T030000000Z/);
    expect(await pickSnapshot(term(['']).io, list)).toBe(list[0]);
  });
});
