/**
 * The post-data part of an initial copy (pg_dump --section=post-data): index and key builds, then foreign
 * keys, triggers, rules, attachments, comments. The builds depend only on the tables, so, like
 * `pg_restore -j`, they can run on several connections at once, biggest table first; everything else runs
 * after them, in pg_dump's order. pg_dump's plain output marks each object with a header comment
 * (`-- Name: …; Type: INDEX; Schema: …`): the script is cut there. Only an entry that is clearly one
 * build statement is taken out; anything unusual (several statements, quoted names with spaces, an index
 * on a partitioned parent) stays in the rest, so the rest plus the builds is always the whole script.
 */

/** One index or key build that may run beside the others. */
export interface IndexBuild {
  sql: string;
  /** the table as pg_dump wrote it (schema.name), for scheduling */
  table: string;
  /** position among the script's entries, to put it back in order if it has to run with the rest */
  index: number;
}

export interface PostDataPlan {
  /** session settings before the first entry (search_path etc.): run first on every connection */
  preamble: string;
  builds: IndexBuild[];
  /** the script without the builds (in order, preamble included); `withBuilds` puts some back */
  rest(withBuilds?: readonly IndexBuild[]): string;
}

const HEADER = /^--\n-- Name: [^\n]*; Type: ([A-Z ]+); Schema: [^\n]*\n--\n/gm;
const CREATE_INDEX = /^CREATE (?:UNIQUE )?INDEX [^\s;]+ ON ([^\s;]+) USING [^;]*;$/;
const ADD_KEY =
  /^ALTER TABLE ONLY ([^\s;]+)\n\s+ADD CONSTRAINT [^\s;]+ (?:PRIMARY KEY|UNIQUE|EXCLUDE) [^;]*;$/;

/** The table an entry builds an index on, if the entry is exactly one such build. */
function buildTarget(type: string, body: string): string | null {
  const sql = body.trim();
  if (type === 'INDEX') return CREATE_INDEX.exec(sql)?.[1] ?? null;
  if (type === 'CONSTRAINT') return ADD_KEY.exec(sql)?.[1] ?? null;
  return null;
}

export function planPostData(script: string): PostDataPlan {
  const starts = [...script.matchAll(HEADER)].map((m) => ({ at: m.index, type: m[1] }));
  const preamble = script.slice(0, starts[0]?.at ?? script.length);
  const entries = starts.map((s, i) => script.slice(s.at, starts[i + 1]?.at ?? script.length));
  const builds: IndexBuild[] = [];
  starts.forEach((s, i) => {
    const body = entries[i].replace(HEADER, '');
    const table = buildTarget(s.type, body);
    if (table) builds.push({ sql: body.trim(), table, index: i });
  });
  const taken = new Set(builds.map((b) => b.index));
  return {
    preamble,
    builds,
    rest: (withBuilds = []) => {
      const back = new Set(withBuilds.map((b) => b.index));
      return preamble + entries.filter((_, i) => !taken.has(i) || back.has(i)).join('');
    },
  };
}
