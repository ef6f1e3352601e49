/**
 * A plain-SQL pg_dump script (schema-pre.sql, schema-post.sql) cut into its entries, so that recovery can run
 * them one by one (knowing which object failed), tolerate grants to roles this installation lacks, and build
 * indexes on several connections at once, as pg_restore does.
 */
import type { Client } from 'pg';
import { PgferryError } from '../../shared/errors';
import type { Logger } from '../../shared/log';
import { sqlFromPgDump } from '../../shared/pg-dump-script';

export interface DumpEntry {
  name: string;
  /** pg_dump's object type: TABLE, INDEX, CONSTRAINT, FK CONSTRAINT, ACL, ... */
  type: string;
  schema: string;
  sql: string;
}

export interface DumpScript {
  /** session settings (SET ..., search_path) every connection runs first */
  preamble: string;
  entries: DumpEntry[];
}

const HEADER =
  /^--\n-- (?:Data for )?Name: ([^\n]*?); Type: ([^;\n]*); Schema: ([^;\n]*); Owner: [^\n]*\n--\n/gm;
const SET_LINE = /^SET [a-z_]+ = [^\n]*;$/;

/** Splits off the SET lines (and blank lines) that end `body`. */
function splitTrailingSets(body: string): [string, string] {
  const lines = body.split('\n');
  let cut = lines.length;
  let sawSet = false;
  for (let i = lines.length - 1; i >= 0; i--) {
    if (lines[i].trim() === '') continue;
    if (!SET_LINE.test(lines[i])) break;
    sawSet = true;
    cut = i;
  }
  if (!sawSet) return [body, ''];
  return [lines.slice(0, cut).join('\n'), `${lines.slice(cut).join('\n')}\n`];
}

export function parseDumpScript(text: string): DumpScript {
  const sql = sqlFromPgDump(text.replace(/\r\n/g, '\n'));
  const heads = [...sql.matchAll(HEADER)];
  if (heads.length === 0) return { preamble: sql, entries: [] };
  const preamble = sql.slice(0, heads[0].index);
  const entries: DumpEntry[] = [];
  let carried = '';
  heads.forEach((h, i) => {
    const start = (h.index ?? 0) + h[0].length;
    const end = i + 1 < heads.length ? (heads[i + 1].index ?? sql.length) : sql.length;
    // "SET default_tablespace = ''" and the like belong to the entry that follows them
    const [body, next] = splitTrailingSets(sql.slice(start, end));
    entries.push({ name: h[1], type: h[2], schema: h[3], sql: carried + body });
    carried = next;
  });
  return { preamble, entries };
}

/** Entries that only build an index or a non-foreign-key constraint: they may run in parallel. */
export function isIndexBuild(e: DumpEntry): boolean {
  return e.type === 'INDEX' || e.type === 'CONSTRAINT';
}

const UNDEFINED_OBJECT = '42704';
const DEADLOCK = '40P01';

export interface RunResult {
  /** grants skipped because a role does not exist here */
  warnings: string[];
}

async function runEntry(c: Client, e: DumpEntry, phase: string, logger: Logger | undefined, out: RunResult) {
  for (let attempt = 1; ; attempt++) {
    try {
      await c.query(e.sql);
      return;
    } catch (err) {
      const code = (err as { code?: string }).code;
      const msg = (err as Error).message;
      if ((e.type === 'ACL' || e.type === 'DEFAULT ACL') && code === UNDEFINED_OBJECT) {
        const w = `${phase}: skipped the grants on ${e.name}: ${msg}; create that role and grant again`;
        logger?.warn(w);
        out.warnings.push(w);
        return;
      }
      if (code === DEADLOCK && attempt < 3) continue;
      throw new PgferryError('RESTORE_FAILED', `${phase}: ${e.type} ${e.schema}.${e.name} failed: ${msg}`, {
        cause: err,
        details: { phase, type: e.type, name: e.name },
      });
    }
  }
}

/** Runs the script's entries in order on one connection. */
export async function runScript(
  c: Client,
  script: DumpScript,
  phase: string,
  logger?: Logger,
): Promise<RunResult> {
  const out: RunResult = { warnings: [] };
  await c.query(script.preamble);
  for (const e of script.entries) await runEntry(c, e, phase, logger, out);
  return out;
}

/**
 * Index and constraint builds over all connections first, then everything else (foreign keys, triggers,
 * index attachments, ...) in the script's order on the first connection.
 */
export async function runScriptParallel(
  clients: Client[],
  script: DumpScript,
  phase: string,
  logger?: Logger,
): Promise<RunResult> {
  const out: RunResult = { warnings: [] };
  await Promise.all(clients.map((c) => c.query(script.preamble)));
  const builds = script.entries.filter(isIndexBuild);
  const rest = script.entries.filter((e) => !isIndexBuild(e));
  let next = 0;
  let failed = false;
  await Promise.all(
    clients.map(async (c) => {
      while (!failed && next < builds.length) {
        const e = builds[next++];
        try {
          await runEntry(c, e, phase, logger, out);
        } catch (err) {
          failed = true;
          throw err;
        }
      }
    }),
  );
  for (const e of rest) await runEntry(clients[0], e, phase, logger, out);
  return out;
}
