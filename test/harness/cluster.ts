/**
 * Throwaway PostgreSQL 15 clusters for tests and benchmarks: initdb + pg_ctl on a free loopback port,
 * wal_level=logical, run as the `postgres` OS user when we are root. Always stopped and removed by `destroy()`.
 */
import { execFile, execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export const PG_BIN_DIR = process.env.PGFERRY_PG_BIN ?? '/usr/lib/postgresql/15/bin';

export interface ClusterInfo {
  name: string;
  dir: string;
  dataDir: string;
  port: number;
  socketDir: string;
}

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

function asPostgres(cmd: string, args: string[]): [string, string[]] {
  return isRoot ? ['runuser', ['-u', 'postgres', '--', cmd, ...args]] : [cmd, args];
}

async function pgExec(bin: string, args: string[], timeoutMs = 120_000): Promise<string> {
  const [cmd, argv] = asPostgres(path.join(PG_BIN_DIR, bin), args);
  const { stdout } = await run(cmd, argv, { timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 });
  return stdout;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export function makeTempDir(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  if (isRoot) execFileSync('chown', ['postgres:postgres', dir]);
  fs.chmodSync(dir, 0o777);
  return dir;
}

export interface ClusterOptions {
  name: string;
  /** extra postgresql.conf lines */
  settings?: Record<string, string | number>;
}

export class Cluster implements ClusterInfo {
  readonly name: string;
  readonly dir: string;
  readonly dataDir: string;
  readonly socketDir: string;
  port: number;

  constructor(info: ClusterInfo) {
    this.name = info.name;
    this.dir = info.dir;
    this.dataDir = info.dataDir;
    this.socketDir = info.socketDir;
    this.port = info.port;
  }

  static async create(opts: ClusterOptions): Promise<Cluster> {
    const dir = makeTempDir(`pgferry-${opts.name}-`);
    const dataDir = path.join(dir, 'data');
    const port = await freePort();
    await pgExec('initdb', [
      '-D',
      dataDir,
      '-U',
      'postgres',
      '-A',
      'trust',
      '-E',
      'UTF8',
      '--no-sync',
      '--locale=C',
    ]);
    const settings: Record<string, string | number> = {
      listen_addresses: "'127.0.0.1'",
      port,
      unix_socket_directories: `'${dir}'`,
      wal_level: 'logical',
      max_replication_slots: 20,
      max_wal_senders: 20,
      max_connections: 100,
      shared_buffers: "'64MB'",
      fsync: 'off',
      full_page_writes: 'off',
      max_wal_size: "'1GB'",
      wal_sender_timeout: "'30s'",
      logging_collector: 'off',
      log_min_messages: 'warning',
      ...opts.settings,
    };
    const conf = Object.entries(settings)
      .map(([k, v]) => `${k} = ${v}`)
      .join('\n');
    fs.appendFileSync(path.join(dataDir, 'postgresql.conf'), `\n${conf}\n`);
    const c = new Cluster({ name: opts.name, dir, dataDir, port, socketDir: dir });
    await c.start();
    return c;
  }

  info(): ClusterInfo {
    return {
      name: this.name,
      dir: this.dir,
      dataDir: this.dataDir,
      port: this.port,
      socketDir: this.socketDir,
    };
  }

  url(database = 'postgres'): string {
    return `postgres://postgres@127.0.0.1:${this.port}/${database}`;
  }

  async start(): Promise<void> {
    await pgExec('pg_ctl', [
      '-D',
      this.dataDir,
      '-l',
      path.join(this.dir, 'server.log'),
      '-w',
      '-t',
      '60',
      'start',
    ]);
  }

  async stop(mode: 'fast' | 'immediate' = 'fast'): Promise<void> {
    await pgExec('pg_ctl', ['-D', this.dataDir, '-m', mode, '-w', '-t', '60', 'stop']);
  }

  async isRunning(): Promise<boolean> {
    try {
      await pgExec('pg_ctl', ['-D', this.dataDir, 'status']);
      return true;
    } catch {
      return false;
    }
  }

  async destroy(): Promise<void> {
    if (await this.isRunning()) await this.stop('immediate').catch(() => undefined);
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
