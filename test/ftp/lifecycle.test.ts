/**
 * The server inside `pgferry server`: no signal handlers, a prompt stop() with a download in progress,
 * snapshots deleted by rotation mid-download, listen failures as clear errors, logging through winston.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import { SnapshotFtpServer } from '../../backup-server/ftp';
import { hashPassword, parsePasswordHash } from '../../shared/auth/password';
import { isPgferryError } from '../../shared/errors';
import { createLogger, type LogEntry, silentLogger } from '../../shared/log';
import { waitFor } from '../harness/db';
import {
  connect,
  freePortRange,
  ftpOptions,
  PASSWORD,
  startServer,
  tempDir,
  writeSnapshot,
} from './fixtures';

const BIG = 'tables/public.big.copy';
const SIGNALS = ['SIGTERM', 'SIGINT', 'SIGQUIT'] as const;

let root: string;
let passivePorts: string;

beforeAll(async () => {
  root = tempDir('pgferry-ftp-life-');
  passivePorts = await freePortRange();
});

afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

function activeTimers(): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
}

/** How many of this process's descriptors point at `file`. */
function openDescriptors(file: string): number {
  let n = 0;
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    try {
      if (fs.readlinkSync(`/proc/self/fd/${fd}`).startsWith(file)) n++;
    } catch {
      /* closed meanwhile */
    }
  }
  return n;
}

test('the server installs no signal handlers, and stop() returns within seconds with a download in progress and frees its file', async () => {
  const snap = writeSnapshot(root, {
    source: 'stopping',
    at: new Date('2026-11-20T03:00:00Z'),
    tables: { big: 48 << 20 },
  });
  const file = path.join(snap.dir, BIG);
  const before = SIGNALS.map((s) => process.listenerCount(s));
  const timersBefore = activeTimers();
  const server = await startServer(ftpOptions(root, passivePorts));
  expect(SIGNALS.map((s) => process.listenerCount(s))).toEqual(before);
  const port = server.port ?? 0;
  const idle = await connect(port);
  const downloading = await connect(port);
  let firstChunk: () => void = () => undefined;
  const gotFirstChunk = new Promise<void>((resolve) => {
    firstChunk = resolve;
  });
  // a client that stops reading after the first chunk: the server is blocked writing
  const stalled = new Writable({
    write(_chunk, _enc, _cb) {
      firstChunk();
    },
  });
  const outcome = downloading.downloadTo(stalled, `/stopping/${snap.id}/${BIG}`).then(
    () => 'finished',
    () => 'failed',
  );
  await gotFirstChunk;
  expect(openDescriptors(file)).toBe(1);
  expect(server.sessionCount).toBe(2);

  const t0 = Date.now();
  await server.stop();
  expect(Date.now() - t0).toBeLessThan(3000);
  expect(server.running).toBe(false);
  expect(await outcome).toBe('failed');
  await waitFor('the idle client to see the connection closed', () => idle.closed, 5000, 50);
  await waitFor('the snapshot file to be closed', () => openDescriptors(file) === 0, 5000, 50);
  await expect(connect(port)).rejects.toThrow(/ECONNREFUSED/);
  expect(SIGNALS.map((s) => process.listenerCount(s))).toEqual(before);
  // nothing of the server keeps the process alive (ftp-srv leaves a 1 s timer per closed session otherwise)
  expect(activeTimers()).toBeLessThanOrEqual(timersBefore);
});

test('a snapshot deleted by rotation during a download is delivered whole; once deleted it is no longer served', async () => {
  const snap = writeSnapshot(root, {
    source: 'rotating',
    at: new Date('2026-11-20T03:00:00Z'),
    tables: { big: 32 << 20 },
  });
  const expected = snap.manifest.tables[0].sha256;
  const server = await startServer(ftpOptions(root, passivePorts));
  const client = await connect(server.port ?? 0);
  try {
    const hash = createHash('sha256');
    let bytes = 0;
    const deleting = new Writable({
      write(chunk: Buffer, _enc, cb) {
        // rotation removes the whole snapshot after the first chunk, long before the server read the rest
        if (bytes === 0) fs.rmSync(snap.dir, { recursive: true });
        hash.update(chunk);
        bytes += chunk.length;
        cb();
      },
    });
    await client.downloadTo(deleting, `/rotating/${snap.id}/${BIG}`);
    expect(fs.existsSync(snap.dir)).toBe(false);
    expect({ bytes, sha256: hash.digest('hex') }).toEqual({ bytes: 32 << 20, sha256: expected });

    let received = 0;
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        received += chunk.length;
        cb();
      },
    });
    await expect(client.downloadTo(sink, `/rotating/${snap.id}/${BIG}`)).rejects.toMatchObject({ code: 551 });
    expect(received).toBe(0);
    expect((await client.list('/rotating')).map((f) => f.name)).toEqual(['catalog.json']);
  } finally {
    client.close();
    await server.stop();
  }
});

test('a port already in use fails start() with CONFIG_INVALID naming ftp.port; a disabled server does not listen', async () => {
  const blocker = net.createServer();
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  const taken = (blocker.address() as net.AddressInfo).port;
  try {
    const entries: LogEntry[] = [];
    const logDir = tempDir('pgferry-ftp-log-');
    const logger = createLogger({
      level: 'info',
      file: path.join(logDir, 'l.log'),
      sink: (e) => entries.push(e),
    });
    const server = new SnapshotFtpServer(ftpOptions(root, passivePorts, { port: taken }), logger);
    const err = await server.start().then(
      () => null,
      (e: unknown) => e,
    );
    expect(isPgferryError(err, 'CONFIG_INVALID')).toBe(true);
    expect((err as Error).message).toBe(
      `ftp.port: 127.0.0.1:${taken} is already in use by another program: stop it or choose another ftp.port`,
    );
    expect(server.running).toBe(false);
    // reported once, by whoever calls start(): nothing logged as a warning or error here
    expect(entries.filter((e) => e.level === 'warn' || e.level === 'error')).toEqual([]);
    logger.close();
    fs.rmSync(logDir, { recursive: true, force: true });
  } finally {
    blocker.close();
  }
  const disabled = new SnapshotFtpServer(ftpOptions(root, passivePorts, { enabled: false }), silentLogger());
  await disabled.start();
  expect([disabled.running, disabled.port]).toEqual([false, null]);
  expect(() => new SnapshotFtpServer(ftpOptions(root, '30010-30000'), silentLogger())).toThrow(
    /ftp.passivePorts: "30010-30000" is not a port range/,
  );
});

test('ftp-srv logs go to the product logger, the default password is warned about, and no password is ever logged', async () => {
  const entries: LogEntry[] = [];
  const logDir = tempDir('pgferry-ftp-log-');
  const logger = createLogger({
    level: 'debug',
    file: path.join(logDir, 'server.log'),
    sink: (e) => entries.push(e),
  });
  const server = await startServer(
    ftpOptions(root, passivePorts, {
      passwordHash: parsePasswordHash(hashPassword('backup', { N: 1024 })),
      defaultPassword: true,
    }),
    logger,
  );
  try {
    const port = server.port ?? 0;
    (await connect(port, { password: 'backup' })).close();
    await expect(connect(port, { password: PASSWORD })).rejects.toMatchObject({ code: 530 });
    await waitFor(
      'the failed login to be logged',
      () => entries.some((e) => e.message === 'FTP login failed'),
      5000,
      20,
    );
  } finally {
    await server.stop();
    logger.close();
    fs.rmSync(logDir, { recursive: true, force: true });
  }
  const warning = entries.find((e) => e.level === 'warn' && /default password "backup"/.test(e.message));
  expect(warning?.message).toMatch(/set ftp.passwordHash/);
  // ftp-srv's own records (bunyan) arrive tagged, with their fields
  expect(entries.find((e) => e.message === 'Listening')).toMatchObject({ component: 'ftp', protocol: 'ftp' });
  expect(entries.filter((e) => e.level === 'error')).toEqual([]);
  const all = JSON.stringify(entries);
  expect(all).not.toContain(PASSWORD);
  expect(all).not.toMatch(/PASS backup/);
});
