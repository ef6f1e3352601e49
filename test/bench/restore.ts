/**
 * Benchmark: restore of a pgferry snapshot of a `pgbench -i -s <scale>` database (schema, parallel COPY,
 * indexes, sequences, row-count check) against `pg_restore -j 2` of a `pg_dump -Fd` of the same data, into
 * a fresh database on the same cluster, runs interleaved. Target: pgferry's time <= pg_restore's.
 * Run alone: `node dist/test/bench/restore.js [scale] [runs]` (own cluster, default scale 10, 3 runs).
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { sha256OfFile } from '../../agent/recovery/checksum';
import { snapshotFiles } from '../../agent/recovery/manifest-reader';
import { restoreSnapshot } from '../../agent/recovery/restore';
import { Cluster, PG_BIN_DIR } from '../harness/cluster';
import { createDatabase, dropDatabase, query } from '../harness/db';
import { makeSnapshotFixture } from '../recovery/fixtures';
import { type BenchRow, makeRow, median } from './row';

const run = promisify(execFile);

function pgArgs(cluster: Cluster): string[] {
  return ['-h', '127.0.0.1', '-p', String(cluster.port), '-U', 'postgres'];
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t) / 1e9;
}

function dirBytes(dir: string): number {
  let n = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) n += fs.statSync(path.join(e.parentPath, e.name)).size;
  }
  return n;
}

export async function benchRestore(opts: {
  scale: number;
  runs: number;
  cluster: Cluster;
}): Promise<BenchRow> {
  const { cluster, scale } = opts;
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'pgferry-bench-restore-'));
  const src = `bench_restore_src_${process.pid}`;
  const dst = `bench_restore_dst_${process.pid}`;
  try {
    const srcUrl = await createDatabase(cluster, src);
    await run(path.join(PG_BIN_DIR, 'pgbench'), ['-i', '-q', '-s', String(scale), ...pgArgs(cluster), src], {
      timeout: 3_600_000,
    });
    const size = await query<{ b: string }>(srcUrl, 'SELECT pg_database_size(current_database())::text AS b');
    const fixture = await makeSnapshotFixture({
      url: srcUrl,
      root: path.join(work, 'snapshots'),
      source: 'bench',
    });
    const dumpDir = path.join(work, 'dump');
    await run(path.join(PG_BIN_DIR, 'pg_dump'), ['-Fd', '-j', '2', '-f', dumpDir, ...pgArgs(cluster), src], {
      timeout: 3_600_000,
    });
    const verify = await timed(async () => {
      for (const f of snapshotFiles(fixture.manifest)) await sha256OfFile(path.join(fixture.dir, f.file));
    });

    const ours: number[] = [];
    const phases: string[] = [];
    const theirs: number[] = [];
    const fresh = async () => {
      await dropDatabase(cluster, dst);
      await createDatabase(cluster, dst);
      await query(cluster.url(), 'CHECKPOINT');
    };
    const pgferry = async () => {
      await fresh();
      ours.push(
        await timed(async () => {
          const r = await restoreSnapshot({
            url: cluster.url(dst),
            dir: fixture.dir,
            manifest: fixture.manifest,
            jobs: 2,
          });
          phases.push(`${r.phases.data.toFixed(1)}+${r.phases.postData.toFixed(1)}`);
        }),
      );
    };
    const pgRestore = async () => {
      await fresh();
      theirs.push(
        await timed(() =>
          run(path.join(PG_BIN_DIR, 'pg_restore'), ['-j', '2', '-d', dst, ...pgArgs(cluster), dumpDir], {
            timeout: 3_600_000,
          }),
        ),
      );
    };
    for (let i = 0; i < opts.runs; i++) {
      if (i % 2 === 0) {
        await pgferry();
        await pgRestore();
      } else {
        await pgRestore();
        await pgferry();
      }
    }
    const rows = fixture.manifest.tables.reduce((n, t) => n + t.rows, 0);
    return makeRow({
      name: `restore pgbench -s ${scale} (${(Number(size[0].b) / 1e9).toFixed(2)} GB database, ${rows} rows)`,
      unit: 's',
      pgferry: median(ours),
      peer: median(theirs),
      peerName: 'pg_restore -j 2 (pg_dump -Fd)',
      target: 1.0,
      higherIsBetter: false,
      runs: opts.runs,
      notes:
        `snapshot ${(fixture.manifest.totalBytes / 1e6).toFixed(1)} MB (gzip -1), dump ${(dirBytes(dumpDir) / 1e6).toFixed(1)} MB; ` +
        `pgferry runs ${ours.map((s) => s.toFixed(2)).join('/')} s (data+indexes ${phases.join('/')}), pg_restore ${theirs.map((s) => s.toFixed(2)).join('/')} s; ` +
        `SHA-256 check of the snapshot (before a restore, not timed above) ${verify.toFixed(2)} s`,
    });
  } finally {
    await dropDatabase(cluster, dst).catch(() => undefined);
    await dropDatabase(cluster, src).catch(() => undefined);
    fs.rmSync(work, { recursive: true, force: true });
  }
}

if (require.main === module) {
  (async () => {
    const cluster = await Cluster.create({ name: 'bench-restore' });
    try {
      const scale = Number(process.argv[2] ?? 10);
      const runs = Number(process.argv[3] ?? 3);
      console.log(JSON.stringify(await benchRestore({ scale, runs, cluster }), null, 2));
    } finally {
      await cluster.destroy();
    }
  })().catch((e) => {
    console.error(e);
    process.exitCode = 1;
  });
}
