/**
 * `--profile`: where pgferry's time goes. Summarises the V8 CPU profiles the server and agent processes
 * wrote (self time by function and by package/file) and the replica's pg_stat_statements.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { sql } from './bench-env';

interface CpuProfile {
  nodes: {
    id: number;
    hitCount?: number;
    callFrame: { functionName: string; url: string; lineNumber: number };
  }[];
  startTime: number;
  endTime: number;
}

export interface ProfileTop {
  file: string;
  seconds: number;
  busyPercent: number;
  functions: { name: string; percent: number }[];
  areas: { name: string; percent: number }[];
}

function area(url: string, fn: string): string {
  if (!url) return fn.startsWith('(') ? fn : '(native)';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return pkg[1];
  if (url.startsWith('node:')) return 'node internals';
  const own = /dist\/(.+)$/.exec(url);
  return own ? own[1] : url;
}

function top(map: Map<string, number>, total: number, n: number): { name: string; percent: number }[] {
  return [...map.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([name, hits]) => ({ name, percent: Math.round((hits / total) * 1000) / 10 }));
}

function summarise(file: string): ProfileTop {
  const p = JSON.parse(fs.readFileSync(file, 'utf8')) as CpuProfile;
  const byFn = new Map<string, number>();
  const byArea = new Map<string, number>();
  let total = 0;
  let idle = 0;
  for (const n of p.nodes) {
    const hits = n.hitCount ?? 0;
    if (!hits) continue;
    const { functionName, url, lineNumber } = n.callFrame;
    total += hits;
    if (functionName === '(idle)') {
      idle += hits;
      continue;
    }
    const where = url ? ` ${area(url, functionName)}:${lineNumber + 1}` : '';
    const key = `${functionName || '(anonymous)'}${where}`;
    byFn.set(key, (byFn.get(key) ?? 0) + hits);
    const a = area(url, functionName);
    byArea.set(a, (byArea.get(a) ?? 0) + hits);
  }
  const busy = total - idle;
  return {
    file,
    seconds: (p.endTime - p.startTime) / 1e6,
    busyPercent: total ? Math.round((busy / total) * 1000) / 10 : 0,
    functions: top(byFn, busy || 1, 15),
    areas: top(byArea, busy || 1, 10),
  };
}

/** Summaries of every profile under dir/<role>/, printed to stderr; the profiles stay for DevTools. */
export function profileSummary(dir: string, log: (msg: string) => void): ProfileTop[] {
  const out: ProfileTop[] = [];
  for (const role of ['server', 'agent']) {
    const d = path.join(dir, role);
    if (!fs.existsSync(d)) continue;
    for (const f of fs.readdirSync(d).filter((x) => x.endsWith('.cpuprofile'))) {
      const s = summarise(path.join(d, f));
      out.push(s);
      if (s.seconds < 20) continue; // the short-lived agents of the initial copy runs
      const list = (xs: { name: string; percent: number }[]) =>
        xs.map((x) => `    ${x.percent.toFixed(1).padStart(5)} %  ${x.name}`).join('\n');
      log(
        `CPU profile ${role} ${f}: ${s.seconds.toFixed(0)} s, busy ${s.busyPercent} % of samples\n` +
          `  self time by package/file (% of busy):\n${list(s.areas)}\n  self time by function:\n${list(s.functions)}`,
      );
    }
  }
  log(`CPU profiles kept in ${dir} (open them in Chrome DevTools > Performance)`);
  return out;
}

/** The replica's most expensive statements (pg_stat_statements), per database. */
export async function statementSummary(adminUrl: string): Promise<Record<string, unknown>[]> {
  return sql(
    adminUrl,
    `SELECT d.datname AS db, s.calls, s.rows, round(s.total_exec_time::numeric, 1) AS total_ms,
            round(s.mean_exec_time::numeric, 3) AS mean_ms, left(regexp_replace(s.query, '\\s+', ' ', 'g'), 160) AS query
       FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
      ORDER BY s.total_exec_time DESC LIMIT 15`,
  );
}
