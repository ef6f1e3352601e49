/**
 * Benchmark: loopback FTP download of a snapshot (≥ `bytes`, several files) against `cat` of the same files
 * to /dev/null; medians of interleaved runs, page cache warm for both. Target: pgferry's throughput ≥ 0.5×
 * cat's. Plain FTP (no TLS).
 *
 * The FTP server runs in its own Node process (this file with `serve`), as in `pgferry server`, and the
 * files are fetched by `curl` (one process, one login, every file, into /dev/null), as a recovery on another
 * host would. For context the notes also give the same download by basic-ftp inside the bench's process
 * (client and server of the old measurement shared one event loop) and a bare Node fs→TCP pipe.
 *
 * Run alone: `node dist/test/bench/ftp-download.js [bytes] [runs]` (default 1 GiB, 3 runs; prints the row).
 */
import { execFile, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import { promisify } from 'node:util';
import { Client } from 'basic-ftp';
import { SnapshotFtpServer } from '../../backup-server/ftp';
import { hashPassword, parsePasswordHash } from '../../shared/auth/password';
import { silentLogger } from '../../shared/log';
import { formatSnapshotId, MANIFEST_FILE, type SnapshotManifest } from '../../shared/snapshot/manifest';
import { type BenchRow, makeRow, median } from './row';

const run = promisify(execFile);
const FILES = 4;
const BLOCK_BYTES = 8 * 1024 * 1024;
const PASSWORD = 'bench-password';

interface BenchSnapshot {
  source: string;
  id: string;
  /** paths on disk and as FTP paths */
  files: { local: string; remote: string; bytes: number }[];
  totalBytes: number;
}

/** Writes a snapshot of FILES table files totalling at least `bytes`, with its manifest. */
async function writeBenchSnapshot(root: string, bytes: number): Promise<BenchSnapshot> {
  const source = 'bench';
  const id = formatSnapshotId(new Date());
  const dir = path.join(root, source, id);
  fs.mkdirSync(path.join(dir, 'tables'), { recursive: true });
  const block = randomBytes(BLOCK_BYTES);
  const perFile = Math.ceil(bytes / FILES);
  const tables = [];
  const files = [];
  for (let i = 0; i < FILES; i++) {
    const file = `tables/public.t${i}.copy`;
    const local = path.join(dir, file);
    const hash = createHash('sha256');
    const fd = fs.openSync(local, 'w');
    for (let done = 0; done < perFile; ) {
      const chunk = block.subarray(0, Math.min(BLOCK_BYTES, perFile - done));
      chunk[0] = i; // files differ
      fs.writeSync(fd, chunk);
      hash.update(chunk);
      done += chunk.length;
    }
    fs.closeSync(fd);
    tables.push({
      file,
      bytes: perFile,
      sha256: hash.digest('hex'),
      schema: 'public',
      name: `t${i}`,
      rows: 0,
      linked: false,
    });
    files.push({ local, remote: `/${source}/${id}/${file}`, bytes: perFile });
  }
  const empty = { file: 'schema-pre.sql', bytes: 0, sha256: createHash('sha256').digest('hex') };
  fs.writeFileSync(path.join(dir, 'schema-pre.sql'), '');
  fs.writeFileSync(path.join(dir, 'schema-post.sql'), '');
  const now = new Date().toISOString();
  const manifest: SnapshotManifest = {
    formatVersion: 1,
    id,
    pgferryVersion: 'bench',
    pgMajor: 15,
    source,
    systemIdentifier: '0',
    syncId: 'bench',
    appVersion: null,
    lsn: '0/0',
    startedAt: now,
    finishedAt: now,
    schemaHash: null,
    schema: { pre: empty, post: { ...empty, file: 'schema-post.sql' } },
    tables,
    sequences: [],
    totalBytes: perFile * FILES,
  };
  fs.writeFileSync(path.join(dir, MANIFEST_FILE), JSON.stringify(manifest));
  return { source, id, files, totalBytes: perFile * FILES };
}

function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

/** 10 consecutive free loopback ports below the ephemeral range. */
async function passiveRange(): Promise<string> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 20_000 + Math.floor(Math.random() * 12_000);
    let ok = true;
    for (let p = base; p < base + 10 && ok; p++) ok = await canBind(p);
    if (ok) return `${base}-${base + 9}`;
  }
  throw new Error('no free range of 10 ports between 20000 and 32000 for passive FTP');
}

async function seconds(fn: () => Promise<unknown>): Promise<number> {
  const t = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t) / 1e9;
}

/** Downloads every file with one logged-in client; checks the byte count. */
async function ftpDownload(client: Client, snap: BenchSnapshot): Promise<void> {
  let received = 0;
  for (const f of snap.files) {
    const sink = new Writable({
      highWaterMark: 4 * 1024 * 1024,
      write(chunk: Buffer, _enc, cb) {
        received += chunk.length;
        cb();
      },
    });
    await client.downloadTo(sink, f.remote);
  }
  if (received !== snap.totalBytes)
    throw new Error(`FTP delivered ${received} bytes, expected ${snap.totalBytes}`);
}

/** The snapshot FTP server in a child process (`serve` mode of this file); resolves with its port. */
async function startServerProcess(root: string, passivePorts: string) {
  const child = spawn(process.execPath, [__filename, 'serve', root, passivePorts], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /PORT (\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    child.once('exit', (code) =>
      reject(new Error(`the FTP server process exited (${code}) before listening`)),
    );
  });
  return {
    port,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

async function serve(root: string, passivePorts: string): Promise<void> {
  const server = new SnapshotFtpServer(
    {
      enabled: true,
      host: '127.0.0.1',
      port: 0,
      passivePorts,
      user: 'backup',
      passwordHash: parsePasswordHash(hashPassword(PASSWORD, { N: 1024 })),
      defaultPassword: false,
      maxFailures: 5,
      lockSeconds: 60,
      root,
    },
    silentLogger(),
  );
  await server.start();
  process.once('SIGTERM', () => void server.stop().then(() => process.exit(0)));
  process.stdout.write(`PORT ${server.port}\n`);
}

/** Every file with one `curl` (one login, files in turn) into /dev/null; checks the byte count. */
async function curlDownload(port: number, snap: BenchSnapshot): Promise<void> {
  const args = ['-sS', '--user', `backup:${PASSWORD}`, '-w', '%{size_download}\n'];
  for (const f of snap.files) args.push('-o', '/dev/null', `ftp://127.0.0.1:${port}${f.remote}`);
  const { stdout } = await run('curl', args, { timeout: 600_000 });
  const received = stdout
    .split('\n')
    .filter(Boolean)
    .reduce((n, l) => n + Number(l), 0);
  if (received !== snap.totalBytes)
    throw new Error(`curl received ${received} bytes, expected ${snap.totalBytes}`);
}

/**
 * The machine's own ceiling for any server: the same files sent over one loopback TCP connection by Python
 * with sendfile(2) (zero-copy from the page cache: no server can send with less work) to a 1 MiB recv_into
 * loop — no FTP, no Node. Seconds.
 */
const RAW_TCP_PY = `
import socket, sys, threading, time
files = sys.argv[1:]
srv = socket.socket(); srv.bind(('127.0.0.1', 0)); srv.listen(1)
def send():
    c, _ = srv.accept()
    for f in files:
        with open(f, 'rb') as fh:
            c.sendfile(fh)
    c.close()
t = threading.Thread(target=send); t.start()
s = socket.create_connection(srv.getsockname()); buf = bytearray(1 << 20); n = 0; t0 = time.time()
while True:
    k = s.recv_into(buf)
    if not k: break
    n += k
print(n, time.time() - t0)
`;

async function rawTcpSeconds(snap: BenchSnapshot): Promise<number> {
  const { stdout } = await run('python3', ['-c', RAW_TCP_PY, ...snap.files.map((f) => f.local)], {
    timeout: 600_000,
  });
  const [bytes, secs] = stdout.trim().split(' ').map(Number);
  if (bytes !== snap.totalBytes) throw new Error(`raw TCP delivered ${bytes} bytes`);
  return secs;
}

/**
 * Context for the figure: the same files piped by a bare Node TCP server into an in-process client that
 * discards them (no FTP at all): the ceiling of any Node server on this machine.
 */
async function nodePipeSeconds(snap: BenchSnapshot): Promise<number> {
  const server = net.createServer((socket) => {
    const next = (i: number) => {
      if (i === snap.files.length) return void socket.end();
      const file = fs.createReadStream(snap.files[i].local, { highWaterMark: 1024 * 1024 });
      file.pipe(socket, { end: false });
      file.once('end', () => next(i + 1));
    };
    next(0);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const { port } = server.address() as net.AddressInfo;
    return await seconds(
      () =>
        new Promise<void>((resolve, reject) => {
          let received = 0;
          const socket = net.connect(port, '127.0.0.1');
          socket.on('data', (chunk: Buffer) => {
            received += chunk.length;
          });
          socket.once('error', reject);
          socket.once('end', () =>
            received === snap.totalBytes ? resolve() : reject(new Error(`pipe delivered ${received} bytes`)),
          );
        }),
    );
  } finally {
    server.close();
  }
}

export async function benchFtpDownload(opts: {
  bytes: number;
  runs: number;
  workDir: string;
}): Promise<BenchRow> {
  const work = fs.mkdtempSync(path.join(opts.workDir, 'pgferry-bench-ftp-'));
  let server: SnapshotFtpServer | undefined;
  let child: Awaited<ReturnType<typeof startServerProcess>> | undefined;
  const client = new Client(60_000);
  try {
    const snap = await writeBenchSnapshot(work, opts.bytes);
    child = await startServerProcess(work, await passiveRange());
    server = new SnapshotFtpServer(
      {
        enabled: true,
        host: '127.0.0.1',
        port: 0,
        passivePorts: await passiveRange(),
        user: 'backup',
        passwordHash: parsePasswordHash(hashPassword(PASSWORD, { N: 1024 })),
        defaultPassword: false,
        maxFailures: 5,
        lockSeconds: 60,
        root: work,
      },
      silentLogger(),
    );
    await server.start();
    await client.access({ host: '127.0.0.1', port: server.port ?? 0, user: 'backup', password: PASSWORD });
    const locals = snap.files.map((f) => f.local);
    const cat = () => run('sh', ['-c', 'cat "$@" > /dev/null', 'cat', ...locals]);
    await cat(); // page cache warm for both
    const ftpMBs: number[] = [];
    const inProcessMBs: number[] = [];
    const catMBs: number[] = [];
    const pipeMBs: number[] = [];
    const rawMBs: number[] = [];
    const mbs = (s: number) => snap.totalBytes / 1e6 / s;
    const port = child.port;
    for (let i = 0; i < opts.runs; i++) {
      catMBs.push(mbs(await seconds(cat)));
      ftpMBs.push(mbs(await seconds(() => curlDownload(port, snap))));
      inProcessMBs.push(mbs(await seconds(() => ftpDownload(client, snap))));
      pipeMBs.push(mbs(await nodePipeSeconds(snap)));
      rawMBs.push(mbs(await rawTcpSeconds(snap)));
    }
    const list = (xs: number[]) => xs.map((x) => x.toFixed(0)).join('/');
    const gib = snap.totalBytes / 1024 ** 3;
    return makeRow({
      name: `FTP download ${gib >= 1 ? `${gib.toFixed(gib % 1 ? 2 : 0)} GiB` : `${Math.round(snap.totalBytes / 1024 ** 2)} MiB`} (loopback, ${FILES} files)`,
      unit: 'MB/s',
      pgferry: median(ftpMBs),
      peer: median(catMBs),
      peerName: 'cat > /dev/null',
      target: 0.5,
      higherIsBetter: true,
      runs: opts.runs,
      notes:
        `server in its own process, curl into /dev/null, plain FTP, page cache warm; MB/s per run: pgferry ` +
        `${list(ftpMBs)}, cat ${list(catMBs)}; basic-ftp in one process with the server (the old measure): ` +
        `${list(inProcessMBs)}; a bare Node fs→TCP pipe in one process (no FTP): ${list(pipeMBs)}; ` +
        `loopback TCP ceiling (Python sendfile to recv_into, no FTP, no Node): ${list(rawMBs)}, ` +
        `median ${median(rawMBs).toFixed(0)} = ${(median(rawMBs) / median(catMBs)).toFixed(2)}x cat`,
    });
  } finally {
    client.close();
    await server?.stop();
    await child?.stop();
    fs.rmSync(work, { recursive: true, force: true });
  }
}

if (require.main === module && process.argv[2] === 'serve') {
  serve(process.argv[3], process.argv[4]).catch((e: unknown) => {
    console.error(e);
    process.exit(1);
  });
} else if (require.main === module) {
  const bytes = Number(process.argv[2] ?? 1024 ** 3);
  const runs = Number(process.argv[3] ?? 3);
  benchFtpDownload({ bytes, runs, workDir: os.tmpdir() }).then(
    (row) => console.log(JSON.stringify(row, null, 2)),
    (e: unknown) => {
      console.error(e);
      process.exit(1);
    },
  );
}
