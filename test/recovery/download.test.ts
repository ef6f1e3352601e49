/**
 * Acceptance 2 of issue 5 and the FTP client: a download interrupted midway resumes on the next run with
 * fewer bytes transferred than the snapshot holds; a partial file with a bad tail is fetched again; FTPS with
 * a pinned or trusted certificate; refusals for bad passwords, untrusted certificates and missing TLS.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import { listSnapshots } from '../../agent/recovery/catalog';
import { certificateFingerprint } from '../../agent/recovery/ftp-source';
import { recover } from '../../agent/recovery/recovery';
import type { SnapshotSource } from '../../agent/recovery/source';
import type { SnapshotFtpServer } from '../../backup-server/ftp';
import { type ErrorCode, isPgferryError } from '../../shared/errors';
import {
  createDatabase,
  dropDatabase,
  query,
  sharedClusters,
  tableHash,
  uniqueName,
  userTables,
} from '../harness/db';
import { writeSelfSignedCert } from '../support/self-signed';
import { type Fixture, makeSnapshotFixture } from './fixtures';
import { ftpSource, startFtp } from './ftp-harness';

const { primary, backup } = sharedClusters();
const sourceDb = uniqueName('dl_src');
const targets: string[] = [];
let root: string;
let certDir: string;
let certFile: string;
let fixture: Fixture;
let plain: SnapshotFtpServer;
let secure: SnapshotFtpServer;

beforeAll(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'pgferry-dl-root-'));
  certDir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgferry-dl-cert-'));
  const cert = writeSelfSignedCert(certDir, 'pgferry-test');
  certFile = cert.certFile;
  const keyFile = cert.keyFile;
  const url = await createDatabase(primary, sourceDb);
  // hex digests compress to about half: a few MiB cross the wire
  await query(
    url,
    `CREATE TABLE readings (id bigserial PRIMARY KEY, a text, b text);
     INSERT INTO readings (a, b) SELECT md5(g::text) || md5((g * 7)::text), md5((g * 13)::text) FROM generate_series(1, 60000) g;
     CREATE TABLE notes (id int PRIMARY KEY, v text); INSERT INTO notes SELECT g, 'n' || g FROM generate_series(1, 100) g;`,
  );
  fixture = await makeSnapshotFixture({ url, root, source: 'monitoring' });
  plain = await startFtp(root);
  secure = await startFtp(root, { certFile, keyFile, required: false });
});

afterAll(async () => {
  await plain?.stop();
  await secure?.stop();
  await dropDatabase(primary, sourceDb);
  for (const t of targets) await dropDatabase(backup, t);
  fs.rmSync(root, { recursive: true, force: true });
  fs.rmSync(certDir, { recursive: true, force: true });
});

function target(): string {
  const name = uniqueName('dl_dst');
  targets.push(name);
  return backup.url(name);
}

async function sameAsSource(url: string): Promise<void> {
  const src = primary.url(sourceDb);
  const tables = await userTables(src);
  expect(await userTables(url)).toEqual(tables);
  for (const t of tables) expect(await tableHash(url, t)).toEqual(await tableHash(src, t));
}

async function refusal(p: Promise<unknown>, code: ErrorCode): Promise<Error> {
  try {
    await p;
  } catch (e) {
    if (isPgferryError(e, code)) return e;
    throw e;
  }
  throw new Error(`expected ${code}, it succeeded`);
}

test('a download interrupted midway resumes on the next run, transferring fewer bytes than the snapshot holds', async () => {
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgferry-dl-work-'));
  const url = target();
  const total = fixture.manifest.totalBytes;
  const big = [...fixture.manifest.tables].sort((a, b) => b.bytes - a.bytes)[0];
  expect(big.bytes).toBeGreaterThan(1024 * 1024);
  try {
    const stop = new AbortController();
    const first = ftpSource(plain);
    const e = await refusal(
      recover({
        src: first,
        latest: true,
        target: url,
        force: false,
        workDir,
        signal: stop.signal,
        onBytes: (n) => {
          if (n > total / 2) stop.abort(new Error('test interrupts the download'));
        },
      }),
      'DOWNLOAD_FAILED',
    );
    await first.close();
    expect(e.message).toMatch(/interrupted/);
    const part = path.join(workDir, 'monitoring', fixture.manifest.id, `${big.file}.part`);
    const partial = fs.statSync(part).size;
    expect(partial).toBeGreaterThan(0);
    expect(partial).toBeLessThan(big.bytes);
    expect(
      await query(backup.url(), 'SELECT 1 FROM pg_database WHERE datname = $1', [
        new URL(url).pathname.slice(1),
      ]),
    ).toHaveLength(0);

    const second = ftpSource(plain);
    const r = await recover({ src: second, latest: true, target: url, force: false, workDir });
    await second.close();
    expect(r.download.filesResumed).toBe(1);
    expect(r.download.filesKept).toBeGreaterThanOrEqual(2);
    // this run fetched the rest of the interrupted file and the files after it, nothing twice
    expect(r.download.transferredBytes).toBe(total - keptSchemaBytes() - partial);
    expect(r.download.transferredBytes).toBeLessThan(total);
    await sameAsSource(url);
  } finally {
    fs.rmSync(workDir, { recursive: true, force: true });
  }
});

function keptSchemaBytes(): number {
  return fixture.manifest.schema.pre.bytes + fixture.manifest.schema.post.bytes;
}

test('a partial file with a bad tail (a crash mid-write) is fetched again from the start and the restore succeeds', async () => {
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgferry-dl-work-'));
  const url = target();
  const big = [...fixture.manifest.tables].sort((a, b) => b.bytes - a.bytes)[0];
  try {
    const part = path.join(workDir, 'monitoring', fixture.manifest.id, `${big.file}.part`);
    fs.mkdirSync(path.dirname(part), { recursive: true });
    const good = fs.readFileSync(path.join(fixture.dir, big.file)).subarray(0, 100_000);
    fs.writeFileSync(part, Buffer.concat([good, Buffer.alloc(4096)]));
    const src = ftpSource(plain);
    const r = await recover({ src, latest: true, target: url, force: false, workDir });
    await src.close();
    expect(r.download.transferredBytes).toBeGreaterThanOrEqual(fixture.manifest.totalBytes - 1);
    await sameAsSource(url);
  } finally {
    fs.rmSync(workDir, { recursive: true, force: true });
  }
});

/** Cuts the transfer of the first download after `failAfter` bytes, the way a reset connection does. */
class FlakySource implements SnapshotSource {
  readonly description = 'flaky';
  cuts = 0;
  constructor(
    private readonly inner: SnapshotSource,
    private readonly failAfter: number,
  ) {}
  list(dir: string) {
    return this.inner.list(dir);
  }
  readText(file: string, max: number) {
    return this.inner.readText(file, max);
  }
  async download(file: string, dest: Writable, startAt: number): Promise<void> {
    if (this.cuts > 0 || !file.includes('/tables/')) return this.inner.download(file, dest, startAt);
    let seen = 0;
    const cutter = new Writable({
      write: (chunk: Buffer, _enc, cb) => {
        seen += chunk.length;
        if (seen <= this.failAfter) return dest.write(chunk, cb);
        this.cuts++;
        cb(new Error('connection reset by peer (test)'));
      },
    });
    return this.inner.download(file, cutter, startAt);
  }
  abort() {
    this.inner.abort();
  }
  close() {
    return this.inner.close();
  }
}

test('a connection cut mid-transfer reconnects and resumes within the same run', async () => {
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgferry-dl-work-'));
  const url = target();
  try {
    const src = new FlakySource(ftpSource(plain), 500_000);
    const r = await recover({ src, latest: true, target: url, force: false, workDir, retryDelayMs: 10 });
    await src.close();
    expect(src.cuts).toBe(1);
    // resumed where the cut happened: every byte crossed the wire once
    expect(r.download.transferredBytes).toBe(fixture.manifest.totalBytes);
    await sameAsSource(url);
  } finally {
    fs.rmSync(workDir, { recursive: true, force: true });
  }
});

test('FTPS with a pinned fingerprint or a trusted certificate lists the snapshots over TLS', async () => {
  const pinned = ftpSource(secure, {
    tls: { fingerprint: certificateFingerprint(fs.readFileSync(certFile, 'utf8')), require: true },
  });
  const list = await listSnapshots(pinned);
  expect(pinned.secure).toBe(true);
  expect(list.map((e) => e.id)).toEqual([fixture.manifest.id]);
  await pinned.close();
  const trusted = ftpSource(secure, { tls: { caFile: certFile, require: true } });
  expect(await listSnapshots(trusted)).toHaveLength(1);
  expect(trusted.secure).toBe(true);
  await trusted.close();
});

test('an untrusted or wrongly pinned certificate, a server without TLS under --require-tls, and a wrong password are refused', async () => {
  const untrusted = await refusal(listSnapshots(ftpSource(secure)), 'FTP_TLS_FAILED');
  expect(untrusted.message).toMatch(/self-signed|certificate/i);
  const wrongPin = await refusal(
    listSnapshots(ftpSource(secure, { tls: { fingerprint: 'AB'.repeat(32) } })),
    'FTP_TLS_FAILED',
  );
  expect(wrongPin.message).toMatch(/not the pinned/);
  const noTls = await refusal(listSnapshots(ftpSource(plain, { tls: { require: true } })), 'FTP_TLS_FAILED');
  expect(noTls.message).toMatch(/offers no TLS/);
  const badPassword = await refusal(
    listSnapshots(ftpSource(plain, { password: 'wrong' })),
    'FTP_AUTH_FAILED',
  );
  expect(badPassword.message).toMatch(/refused user "backup"/);
});
