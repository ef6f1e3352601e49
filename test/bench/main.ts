/**
 * `npm run bench [-- --quick] [-- --profile]`: pgferry against PostgreSQL's own replication and dump tools,
 * each pair measured in the same run on the same data, on two throwaway clusters made (and removed) here.
 * Prints one table of ratios and writes bench-results/<timestamp>.json. See test/bench/BENCHMARKS.md.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { type BenchClusters, createBenchClusters, dropDatabase, pgVersion, sql } from './bench-env';
import { benchBulk } from './bulk';
import { benchInitialCopy, prepareSyncSource, SYNC_SOURCE } from './initial-copy';
import { otherRows } from './other-rows';
import { PgferryRig } from './pgferry-rig';
import { profileSummary, statementSummary } from './profile';
import { type BenchResult, factsHeader, formatTable, machineFacts, passes, writeResult } from './report';
import { type BenchRow, makeRow } from './row';
import {
  PGFERRY_STREAM_DB,
  prepareStreamSources,
  STREAM_SOURCE,
  startReplicators,
  stopReplicators,
} from './stream-setup';
import { benchTpcb } from './streaming';

const SECTIONS = ['copy', 'stream', 'bulk', 'others'] as const;
type Section = (typeof SECTIONS)[number];

const USAGE = `usage: npm run bench -- [--quick] [--runs N] [--only copy,stream,bulk,others] [--profile] [--set ROLE.KEY=VALUE]... [--nice ROLE=N]
  --quick     smaller data and shorter loads (scale 10, -T 15, 200k-row bulk): about 3 minutes
  --runs N    measured runs per figure (default 3; the median is reported)
  --only ...  run only these sections: copy (row 1), stream (row 2), bulk (row 3), others (snapshot,
              restore, FTP);
              the peak-RSS row needs copy or stream
  --profile   also write V8 CPU profiles of the pgferry processes and read pg_stat_statements on the
              replica, and summarise both (slows pgferry down: for finding causes, not for the table)
  --set ...   try a config setting of the server or agent instead of its default (value as JSON or text);
              recorded in the JSON result
  --nice ...  run the agent or server at this CPU priority instead of its systemd unit's Nice=
              (e.g. agent=0); recorded in the JSON result
examples:
  npm run build && npm run bench -- --quick
  npm run bench -- --only stream --profile
  npm run bench -- --quick --only stream --set server.replica.maxGroupDelayMs=0`;

interface Params {
  quick: boolean;
  profile: boolean;
  runs: number;
  sections: Set<Section>;
  overrides: Record<'server' | 'agent', Record<string, unknown>>;
  nice: Partial<Record<'server' | 'agent', number>>;
}

function parseSetting(p: Params, arg: string | undefined): void {
  const m = /^(server|agent)\.([\w.]+)=(.*)$/.exec(arg ?? '');
  if (!m)
    throw new Error(
      `--set wants server.KEY=VALUE or agent.KEY=VALUE, e.g. server.replica.maxGroupDelayMs=0\n${USAGE}`,
    );
  let v: unknown = m[3];
  try {
    v = JSON.parse(m[3]);
  } catch {
    /* plain text */
  }
  p.overrides[m[1] as 'server' | 'agent'][m[2]] = v;
}

function parseNice(p: Params, arg: string | undefined): void {
  const m = /^(server|agent)=(-?\d+)$/.exec(arg ?? '');
  if (!m || Number(m[2]) < -20 || Number(m[2]) > 19)
    throw new Error(`--nice wants agent=N or server=N with N from -20 to 19, e.g. agent=0\n${USAGE}`);
  p.nice[m[1] as 'server' | 'agent'] = Number(m[2]);
}

function parseArgs(argv: string[]): Params {
  const p: Params = {
    quick: false,
    profile: false,
    runs: 3,
    sections: new Set(SECTIONS),
    overrides: { server: {}, agent: {} },
    nice: {},
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--quick') p.quick = true;
    else if (a === '--profile') p.profile = true;
    else if (a === '--set') parseSetting(p, argv[++i]);
    else if (a === '--nice') parseNice(p, argv[++i]);
    else if (a === '--runs') {
      p.runs = Number(argv[++i]);
      if (!Number.isInteger(p.runs) || p.runs < 1)
        throw new Error(`--runs wants a whole number >= 1\n${USAGE}`);
    } else if (a === '--only') {
      const list = (argv[++i] ?? '').split(',');
      const bad = list.filter((s) => !(SECTIONS as readonly string[]).includes(s));
      if (bad.length) throw new Error(`--only: unknown section ${bad.join(', ')}\n${USAGE}`);
      p.sections = new Set(list as Section[]);
    } else if (a === '--help' || a === '-h') {
      process.stdout.write(`${USAGE}\n`);
      process.exit(0);
    } else throw new Error(`unknown argument ${a}\n${USAGE}`);
  }
  return p;
}

const started = Date.now();
/** progress lines (per-run figures), also kept in the JSON result */
const progress: string[] = [];
const log = (msg: string) => {
  const line = `[${((Date.now() - started) / 1000).toFixed(0).padStart(4)} s] ${msg}`;
  progress.push(line);
  process.stderr.write(`${line}\n`);
};

async function main(): Promise<number> {
  const p = parseArgs(process.argv.slice(2));
  const sizes = p.quick
    ? { copyScale: 10, streamScale: 10, seconds: 15, warmupSeconds: 0, bulkRows: 200_000, otherScale: 1 }
    : { copyScale: 50, streamScale: 10, seconds: 60, warmupSeconds: 10, bulkRows: 1_000_000, otherScale: 10 };
  const mode = p.quick ? 'quick' : 'full';
  const machine = machineFacts(await pgVersion());
  const tried = [
    ...Object.entries(p.overrides).flatMap(([role, o]) =>
      Object.entries(o).map(([k, v]) => `${role}.${k}=${JSON.stringify(v)}`),
    ),
    ...Object.entries(p.nice).map(([role, n]) => `${role} Nice=${n}`),
  ];
  process.stdout.write(
    `${factsHeader(machine, mode)}\n${tried.length ? `settings tried: ${tried.join(' ')}\n` : ''}\n`,
  );
  const result: BenchResult = {
    mode,
    startedAt: new Date(started).toISOString(),
    finishedAt: '',
    seconds: 0,
    machine,
    parameters: { runs: p.runs, ...sizes, settings: p.overrides, nice: p.nice },
    rows: [],
    skipped: [],
    errors: [],
  };
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'pgferry-bench-'));
  const profileDir = p.profile
    ? path.resolve(__dirname, '../../../bench-results', `profiles-${result.startedAt.replace(/[:.]/g, '-')}`)
    : undefined;
  let clusters: BenchClusters | null = null;
  let rig: PgferryRig | null = null;
  const cleanup = async () => {
    await rig?.stop().catch(() => undefined);
    rig = null;
    if (clusters) {
      await clusters.primary.destroy().catch(() => undefined);
      await clusters.replica.destroy().catch(() => undefined);
    }
    clusters = null;
  };
  const onSignal = () => {
    log('interrupted: stopping pgferry and removing the clusters');
    void cleanup().finally(() => {
      fs.rmSync(work, { recursive: true, force: true });
      process.exit(130);
    });
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const section = async (name: string, fn: () => Promise<BenchRow[]>): Promise<BenchRow[]> => {
    try {
      return await fn();
    } catch (e) {
      log(`${name} failed: ${(e as Error).stack ?? String(e)}`);
      result.errors.push({ section: name, error: (e as Error).message });
      return [];
    }
  };

  try {
    const replication = p.sections.has('stream') || p.sections.has('bulk');
    if (p.sections.has('copy') || replication) {
      log('creating the primary and replica clusters');
      const cl = await createBenchClusters({ statements: p.profile });
      clusters = cl;
      if (p.profile) await sql(cl.replica.url(), 'CREATE EXTENSION pg_stat_statements');
      rig = await PgferryRig.start({
        primary: cl.primary,
        replica: cl.replica,
        sources: [
          { name: SYNC_SOURCE, database: SYNC_SOURCE },
          { name: STREAM_SOURCE, database: PGFERRY_STREAM_DB },
        ],
        dir: path.join(work, 'pgferry'),
        profileDir,
        overrides: p.overrides,
        nice: p.nice,
      });
      const r = rig;
      // streaming first: its load also makes the WAL files the copies need (--quick skips the copy warm-up)
      let streamRows: BenchRow[] = [];
      if (replication) {
        streamRows = await section('streaming', async () => {
          log(`streaming: two pgbench -i -s ${sizes.streamScale} sources, native subscription and pgferry`);
          await prepareStreamSources(cl.primary, sizes.streamScale);
          if (p.profile) await sql(cl.replica.url(), 'SELECT pg_stat_statements_reset()');
          const reps = await startReplicators(cl.primary, cl.replica, r);
          const rows: BenchRow[] = [];
          if (p.sections.has('stream')) {
            rows.push(...(await benchTpcb({ ...cl, reps, runs: p.runs, ...sizes, log })));
            log(`peak RSS so far (after the streaming runs): ${r.rss.describe()}`);
          }
          if (p.sections.has('bulk')) {
            rows.push(...(await benchBulk({ ...cl, reps, runs: p.runs, rows: sizes.bulkRows, log })));
            log(`peak RSS so far (after the bulk runs): ${r.rss.describe()}`);
          }
          if (p.profile) {
            const statements = await statementSummary(cl.replica.url());
            result.profile = { statements };
            log(
              `replica pg_stat_statements, top by total time:\n${statements.map((x) => `  ${JSON.stringify(x)}`).join('\n')}`,
            );
          }
          await stopReplicators(cl.primary, cl.replica, r);
          return rows;
        });
      }
      if (p.sections.has('copy')) {
        result.rows.push(
          ...(await section('initial copy', async () => {
            log(`initial copy: pgbench -i -s ${sizes.copyScale} on the primary`);
            await prepareSyncSource(cl.primary, sizes.copyScale);
            const rows = await benchInitialCopy({
              ...cl,
              rig: r,
              scale: sizes.copyScale,
              runs: p.runs,
              warmup: !p.quick,
              log,
            });
            await dropDatabase(cl.primary, SYNC_SOURCE);
            return rows;
          })),
        );
      }
      result.rows.push(...streamRows);
      await r.stop();
      for (const role of ['agent', 'server'] as const) {
        result.rows.push(
          makeRow({
            name: `peak RSS of the ${role} (rows above)`,
            unit: 'MB',
            pgferry: r.rss.bytes(role) / 1e6,
            peer: 200,
            peerName: 'limit',
            target: 1,
            higherIsBetter: false,
            runs: 1,
            notes: `highest VmHWM of any ${role} process during the rows above`,
          }),
        );
      }
      rig = null;
      await cleanup();
    }
    if (p.sections.has('others')) {
      const others = await section('others', () =>
        otherRows({
          scale: sizes.otherScale,
          runs: p.runs,
          quick: p.quick,
          work,
          log,
          skipped: result.skipped,
          errors: result.errors,
        }),
      );
      result.rows.push(...others);
    }
    if (profileDir) result.profile = { ...(result.profile as object), cpu: profileSummary(profileDir, log) };
  } finally {
    await cleanup();
    fs.rmSync(work, { recursive: true, force: true });
  }

  machine.loadAverageAtEnd = os.loadavg().map((x) => Math.round(x * 100) / 100);
  result.finishedAt = new Date().toISOString();
  result.log = progress;
  result.seconds = Math.round((Date.now() - started) / 1000);
  process.stdout.write(`${formatTable(result.rows)}\n\n`);
  for (const s of result.skipped) process.stdout.write(`not measured: ${s.section}: ${s.reason}\n`);
  for (const e of result.errors) process.stdout.write(`FAILED: ${e.section}: ${e.error}\n`);
  process.stdout.write(
    `load average at end ${machine.loadAverageAtEnd.join(' / ')}; took ${result.seconds} s; results in ${writeResult(result)}\n`,
  );
  const missed = result.rows.filter((r) => r.target > 0 && !passes(r)).length;
  process.stdout.write(`${missed} of ${result.rows.filter((r) => r.target > 0).length} targets missed\n`);
  return result.errors.length ? 2 : 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 2;
  },
);
