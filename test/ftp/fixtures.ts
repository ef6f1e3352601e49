/**
 * Test helpers for the FTP server: a fake snapshot tree with real files and manifests carrying their true
 * SHA-256, a free passive port range, a started server, and runners for the real clients (curl, Python ftplib).
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { Client } from 'basic-ftp';
import { hashPassword, parsePasswordHash } from '../../shared/auth/password';
import { silentLogger, type Logger } from '../../shared/log';
import {
  formatSnapshotId,
  MANIFEST_FILE,
  type ManifestFile,
  type SnapshotManifest,
  partialDirName,
} from '../../shared/snapshot/manifest';
import type { SnapshotFtpOptions } from '../../backup-server/ftp';
import { SnapshotFtpServer } from '../../backup-server/ftp';

export const USER = 'backup';
export const PASSWORD = 'correct horse battery staple';
/** cheap scrypt cost: tests log in often */
export const PASSWORD_HASH = parsePasswordHash(hashPassword(PASSWORD, { N: 1024 }));

export function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

export async function sha256File(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of fs.createReadStream(file)) h.update(chunk as Buffer);
  return h.digest('hex');
}

export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export interface FakeSnapshot {
  source: string;
  id: string;
  /** the folder on disk */
  dir: string;
  manifest: SnapshotManifest;
}

export interface FakeSnapshotSpec {
  source: string;
  /** snapshot time; the id is derived from it */
  at: Date;
  /** table name → contents (bytes or a size for random bytes) */
  tables?: Record<string, Buffer | number>;
  /** write it as `.<id>.partial` */
  partial?: boolean;
  appVersion?: string | null;
}

function writeEntry(dir: string, file: string, data: Buffer): ManifestFile {
  const full = path.join(dir, file);
  fs.mkdirSync(path.dirname(full), { recursive: true });
  fs.writeFileSync(full, data);
  return { file, bytes: data.length, sha256: sha256(data) };
}

/** Writes a snapshot folder with real files and a manifest of their true sizes and SHA-256. */
export function writeSnapshot(root: string, spec: FakeSnapshotSpec): FakeSnapshot {
  const id = formatSnapshotId(spec.at);
  const dir = path.join(root, spec.source, spec.partial ? partialDirName(id) : id);
  fs.mkdirSync(dir, { recursive: true });
  const pre = writeEntry(dir, 'schema-pre.sql', Buffer.from(`CREATE TABLE t_${id} (id int);\n`));
  const post = writeEntry(dir, 'schema-post.sql', Buffer.from('-- indexes\n'));
  const tables = Object.entries(spec.tables ?? { small: 4096 }).map(([name, content]) => {
    const data = typeof content === 'number' ? randomBytes(content) : content;
    return {
      ...writeEntry(dir, `tables/public.${name}.copy`, data),
      schema: 'public',
      name,
      rows: 1,
      linked: false,
    };
  });
  const manifest: SnapshotManifest = {
    formatVersion: 1,
    id,
    pgferryVersion: '0.1.0',
    pgMajor: 15,
    source: spec.source,
    systemIdentifier: '7300000000000000001',
    syncId: 'sync-1',
    appVersion: spec.appVersion === undefined ? '5.2.1' : spec.appVersion,
    lsn: '0/16B3748',
    startedAt: spec.at.toISOString(),
    finishedAt: new Date(spec.at.getTime() + 60_000).toISOString(),
    schemaHash: null,
    schema: { pre, post },
    tables,
    sequences: [],
    totalBytes: pre.bytes + post.bytes + tables.reduce((n, t) => n + t.bytes, 0),
  };
  fs.writeFileSync(path.join(dir, MANIFEST_FILE), JSON.stringify(manifest, null, 2));
  return { source: spec.source, id, dir, manifest };
}

function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

/** `count` consecutive free loopback ports below the kernel's ephemeral range, e.g. "21040-21049". */
export async function freePortRange(count = 10): Promise<string> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 20_000 + Math.floor(Math.random() * 12_000);
    let ok = true;
    for (let p = base; p < base + count && ok; p++) ok = await canBind(p);
    if (ok) return `${base}-${base + count - 1}`;
  }
  throw new Error('no free range of passive ports found between 20000 and 32000');
}

export function ftpOptions(
  root: string,
  passivePorts: string,
  over: Partial<SnapshotFtpOptions> = {},
): SnapshotFtpOptions {
  return {
    enabled: true,
    host: '127.0.0.1',
    port: 0,
    passivePorts,
    user: USER,
    passwordHash: PASSWORD_HASH,
    defaultPassword: false,
    maxFailures: 5,
    lockSeconds: 60,
    root,
    ...over,
  };
}

export async function startServer(
  opts: SnapshotFtpOptions,
  logger: Logger = silentLogger(),
): Promise<SnapshotFtpServer> {
  const server = new SnapshotFtpServer(opts, logger);
  await server.start();
  return server;
}

export async function connect(
  port: number,
  over: { user?: string; password?: string; secure?: boolean } = {},
): Promise<Client> {
  const client = new Client(10_000);
  await client.access({
    host: '127.0.0.1',
    port,
    user: over.user ?? USER,
    password: over.password ?? PASSWORD,
    secure: over.secure ?? false,
    secureOptions: { rejectUnauthorized: false },
  });
  return client;
}

export interface ProcessResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function run(
  cmd: string,
  args: string[],
  env: Record<string, string> = {},
  timeoutMs = 20_000,
): Promise<ProcessResult> {
  return new Promise((resolve) => {
    execFile(
      cmd,
      args,
      { env: { ...process.env, ...env }, timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        resolve({ code, stdout: String(stdout), stderr: String(stderr) });
      },
    );
  });
}

/** curl with the test credentials against 127.0.0.1:port; `urlPath` starts with "/". */
export function curl(
  port: number,
  urlPath: string,
  extra: string[] = [],
  password = PASSWORD,
): Promise<ProcessResult> {
  return run('curl', [
    '-sS',
    '--max-time',
    '15',
    '--user',
    `${USER}:${password}`,
    ...extra,
    `ftp://127.0.0.1:${port}${urlPath}`,
  ]);
}

/**
 * Runs a Python script with ftplib against the server; the script gets FTP_PORT, FTP_USER, FTP_PASSWORD in
 * its environment and extra arguments in sys.argv[1:], and prints one JSON document.
 */
export async function python(
  port: number,
  script: string,
  args: string[] = [],
  env: Record<string, string> = {},
): Promise<unknown> {
  const r = await run('python3', ['-c', script, ...args], {
    FTP_PORT: String(port),
    FTP_USER: USER,
    FTP_PASSWORD: PASSWORD,
    ...env,
  });
  if (r.code !== 0) throw new Error(`python failed (${r.code}): ${r.stderr}`);
  return JSON.parse(r.stdout);
}
