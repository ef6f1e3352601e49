import { copyJobSql, planCopy, type TableInfo } from '../../agent/copy-plan';
import { planPostData } from '../../backup-server/replica/post-data';

/** pg_dump --section=post-data output (15.x), trimmed to the kinds of entries it has */
const entry = (name: string, type: string, sql: string) =>
  `--\n-- Name: ${name}; Type: ${type}; Schema: public; Owner: -\n--\n\n${sql}\n\n\n`;
const preamble = `--\n-- PostgreSQL database dump\n--\n\nSET statement_timeout = 0;\nSELECT pg_catalog.set_config('search_path', '', false);\n\n`;
const script = [
  preamble,
  entry(
    'child child_pkey',
    'CONSTRAINT',
    'ALTER TABLE ONLY public.child\n    ADD CONSTRAINT child_pkey PRIMARY KEY (id);',
  ),
  entry(
    'big big_pkey',
    'CONSTRAINT',
    'ALTER TABLE ONLY public.big\n    ADD CONSTRAINT big_pkey PRIMARY KEY (id);',
  ),
  entry(
    'part part_pkey',
    'CONSTRAINT',
    'ALTER TABLE ONLY public.part\n    ADD CONSTRAINT part_pkey PRIMARY KEY (id, k);',
  ),
  entry('big_grp', 'INDEX', 'CREATE INDEX big_grp ON public.big USING btree (grp);'),
  entry('INDEX big_grp', 'COMMENT', "COMMENT ON INDEX public.big_grp IS 'a; comment';"),
  entry('part_k', 'INDEX', 'CREATE INDEX part_k ON ONLY public.part USING btree (k);'),
  entry(
    'big_note',
    'INDEX',
    'CREATE UNIQUE INDEX big_note ON public.big USING btree (note);\n\nALTER TABLE ONLY public.big REPLICA IDENTITY USING INDEX big_note;',
  ),
  entry('odd_idx', 'INDEX', 'CREATE INDEX odd_idx ON public."odd table" USING btree (x);'),
  entry('part1_k_idx', 'INDEX ATTACH', 'ALTER INDEX public.part_k ATTACH PARTITION public.part1_k_idx;'),
  entry(
    'child child_big_id_fkey',
    'FK CONSTRAINT',
    'ALTER TABLE ONLY public.child\n    ADD CONSTRAINT child_big_id_fkey FOREIGN KEY (big_id) REFERENCES public.big(id);',
  ),
  '--\n-- PostgreSQL database dump complete\n--\n\n',
].join('');

describe('post-data plan', () => {
  const plan = planPostData(script);

  it('takes out exactly the single index and key builds, with their tables', () => {
    expect(plan.builds.map((b) => [b.table, b.sql.split('\n')[0]])).toEqual([
      ['public.child', 'ALTER TABLE ONLY public.child'],
      ['public.big', 'ALTER TABLE ONLY public.big'],
      ['public.part', 'ALTER TABLE ONLY public.part'],
      ['public.big', 'CREATE INDEX big_grp ON public.big USING btree (grp);'],
    ]);
    expect(plan.preamble).toBe(preamble);
  });

  it('leaves everything else in the rest, in order, and gives back the whole script with all builds', () => {
    const rest = plan.rest();
    expect(rest.startsWith(preamble)).toBe(true);
    for (const kept of [
      'COMMENT ON INDEX',
      'ON ONLY public.part',
      'REPLICA IDENTITY',
      '"odd table"',
      'ATTACH',
      'FOREIGN KEY',
    ])
      expect(rest).toContain(kept);
    expect(rest).not.toContain('PRIMARY KEY');
    expect(rest.indexOf('ATTACH')).toBeLessThan(rest.indexOf('FOREIGN KEY'));
    expect(plan.rest(plan.builds)).toBe(script);
    // a build put back runs in its own place
    const back = plan.rest([plan.builds[1]]);
    expect(back.indexOf('big_pkey')).toBeLessThan(back.indexOf('big_grp'));
  });

  it('has no builds for a script without entries', () => {
    const p = planPostData(preamble);
    expect(p.builds).toEqual([]);
    expect(p.rest()).toBe(preamble);
  });
});

const table = (name: string, mb: number): TableInfo => ({
  schema: 'public',
  name,
  bytes: mb * 1024 * 1024,
  pages: mb * 128,
  columns: ['id', 'Note'],
});

describe('copy plan', () => {
  const tables = [table('a', 1), table('big', 100), table('mid', 10)];

  it('splits a table of at least splitTableMinBytes into one page range per stream, biggest jobs first', () => {
    const jobs = planCopy(tables, { streams: 2, splitTableMinBytes: 64 * 1024 * 1024, pgMajor: 15 });
    expect(jobs.map((j) => [j.table.name, j.parts, j.range])).toEqual([
      ['big', 2, { fromPage: 0, toPage: 6400 }],
      ['big', 2, { fromPage: 6400, toPage: null }],
      ['mid', 1, null],
      ['a', 1, null],
    ]);
    expect(copyJobSql(jobs[1])).toBe(
      `COPY (SELECT "id", "Note" FROM "public"."big" WHERE ctid >= '(6400,0)'::tid) TO STDOUT WITH (FORMAT binary)`,
    );
    expect(copyJobSql(jobs[0])).toContain(`ctid < '(6400,0)'::tid`);
    expect(copyJobSql(jobs[2])).toBe('COPY "public"."mid" TO STDOUT WITH (FORMAT binary)');
  });

  it('splits nothing on one stream, before PostgreSQL 14 (no TID range scans), or below the size', () => {
    for (const o of [
      { streams: 1, splitTableMinBytes: 1, pgMajor: 15 },
      { streams: 2, splitTableMinBytes: 1, pgMajor: 13 },
      { streams: 2, splitTableMinBytes: 200 * 1024 * 1024, pgMajor: 15 },
    ])
      expect(planCopy(tables, o).every((j) => j.parts === 1 && j.range === null)).toBe(true);
  });
});
