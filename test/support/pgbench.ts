/** pgbench as the write load: initialise a database and run the TPC-B-like script for a while. */
import { execFile, spawn } from 'node:child_process';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { type Cluster, PG_BIN_DIR } from '../harness/cluster';

const run = promisify(execFile);

export async function pgbenchInit(cluster: Cluster, db: string, scale: number): Promise<void> {
  await run(
    path.join(PG_BIN_DIR, 'pgbench'),
    ['-i', '-q', '-s', String(scale), '-h', '127.0.0.1', '-p', String(cluster.port), '-U', 'postgres', db],
    {
      timeout: 300_000,
    },
  );
}

/** Runs pgbench for `seconds`; resolves with the number of transactions it reports. */
export function pgbenchRun(
  cluster: Cluster,
  db: string,
  opts: {
    clients: number;
    seconds: number /** transactions per second, all clients together (pgbench -R) */;
    rate?: number;
  },
): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      path.join(PG_BIN_DIR, 'pgbench'),
      [
        '-n',
        '-c',
        String(opts.clients),
        '-j',
        '2',
        ...(opts.rate ? ['-R', String(opts.rate)] : []),
        '-T',
        String(opts.seconds),
        '-h',
        '127.0.0.1',
        '-p',
        String(cluster.port),
        '-U',
        'postgres',
        db,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.on('exit', (code) => {
      const m = /number of transactions actually processed: (\d+)/.exec(out);
      if (code !== 0 || !m) reject(new Error(`pgbench failed (${code}): ${out.slice(-500)}`));
      else resolve(Number(m[1]));
    });
  });
}
