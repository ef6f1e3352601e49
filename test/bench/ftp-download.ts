/**
 * Benchmark: loopback FTP download of a snapshot (≥ `bytes`, several files) with basic-ftp into a discarding
 * sink, against `cat` of the same files to /dev/null; medians of interleaved runs, page cache warm for both.
 * Target: pgferry's throughput ≥ 0.5× cat's.
 *
 * The server and the basic-ftp client share this one Node process (and its event loop), as the recovery and
 * the server never do; the figure is a floor. Plain FTP (no TLS).
 *
 * Run alone: `node dist/test/bench/ftp-download.js [bytes] [runs]` (default 1 GiB, 3 runs; prints the row).
 */
import { execFile } from 'node:child_process';
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
  const client = new Client(60_000);
  try {
    const snap = await writeBenchSnapshot(work, opts.bytes);
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
    const catMBs: number[] = [];
    const pipeMBs: number[] = [];
    const mbs = (s: number) => snap.totalBytes / 1e6 / s;
    for (let i = 0; i < opts.runs; i++) {
      catMBs.push(mbs(await seconds(cat)));
      ftpMBs.push(mbs(await seconds(() => ftpDownload(client, snap))));
      pipeMBs.push(mbs(await nodePipeSeconds(snap)));
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
        `basic-ftp client in the server's Node process, plain FTP, page cache warm; MB/s per run: pgferry ` +
        `${list(ftpMBs)}, cat ${list(catMBs)}; a bare Node fs→TCP pipe (no FTP, the ceiling of a Node server ` +
        `here): ${list(pipeMBs)}, median ${median(pipeMBs).toFixed(0)}`,
    });
  } finally {
    client.close();
    await server?.stop();
    fs.rmSync(work, { recursive: true, force: true });
  }
}

if (require.main === module) {
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
