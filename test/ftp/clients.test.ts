/**
 * Acceptance 1, 4, 6 and the catalogs: real clients (curl, Python ftplib, basic-ftp) on loopback against the
 * snapshot FTP server serving a fake snapshot tree.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import type { SnapshotFtpServer } from '../../backup-server/ftp';
import {
  connect,
  curl,
  type FakeSnapshot,
  freePortRange,
  ftpOptions,
  python,
  sha256,
  sha256File,
  startServer,
  tempDir,
  writeSnapshot,
} from './fixtures';

const BIG = 'tables/public.big.copy';

let root: string;
let work: string;
let server: SnapshotFtpServer;
let port: number;
let older: FakeSnapshot;
let newer: FakeSnapshot;
let other: FakeSnapshot;
let partial: FakeSnapshot;

function bigSha(s: FakeSnapshot): string {
  const t = s.manifest.tables.find((x) => x.file === BIG);
  if (!t) throw new Error('fixture has no big table');
  return t.sha256;
}

/** Names in a Unix LIST output (curl prints the server's lines as they are). */
function listedNames(listing: string): string[] {
  return listing
    .split(/\r?\n/)
    .filter((l) => l.trim() !== '')
    .map((l) => l.trim().split(/\s+/).slice(8).join(' '))
    .sort();
}

beforeAll(async () => {
  root = tempDir('pgferry-ftp-root-');
  work = tempDir('pgferry-ftp-work-');
  older = writeSnapshot(root, {
    source: 'monitoring',
    at: new Date('2026-11-20T03:00:00Z'),
    tables: { big: 3 << 20, small: 100 },
  });
  newer = writeSnapshot(root, {
    source: 'monitoring',
    at: new Date('2026-11-21T03:00:00Z'),
    tables: { big: 2 << 20 },
  });
  other = writeSnapshot(root, {
    source: 'callcenter',
    at: new Date('2026-11-19T03:00:00Z'),
    appVersion: null,
  });
  partial = writeSnapshot(root, {
    source: 'monitoring',
    at: new Date('2026-11-22T03:00:00Z'),
    partial: true,
  });
  // a folder with a snapshot name but no manifest (not complete), a dot-file, a stray file at the root
  fs.mkdirSync(path.join(root, 'monitoring', '20261123T030000000Z', 'tables'), { recursive: true });
  fs.writeFileSync(path.join(root, 'monitoring', '20261123T030000000Z', 'tables', 'x.copy'), 'x');
  fs.writeFileSync(path.join(root, '.rotation-state'), 'hidden');
  fs.writeFileSync(path.join(root, 'monitoring', 'notes.txt'), 'not a snapshot');
  server = await startServer(ftpOptions(root, await freePortRange()));
  port = server.port ?? 0;
});

afterAll(async () => {
  await server?.stop();
  fs.rmSync(root, { recursive: true, force: true });
  fs.rmSync(work, { recursive: true, force: true });
});

const visibleMonitoring = () => ['catalog.json', newer.id, older.id].sort();

test('curl lists the root and a source folder and downloads a snapshot file whose SHA-256 matches the manifest', async () => {
  const rootList = await curl(port, '/');
  expect(rootList).toMatchObject({ code: 0, stderr: '' });
  expect(listedNames(rootList.stdout)).toEqual(['callcenter', 'catalog.json', 'monitoring']);
  const sourceList = await curl(port, '/monitoring/');
  expect(listedNames(sourceList.stdout)).toEqual(visibleMonitoring());
  const out = path.join(work, 'curl-big.copy');
  const dl = await curl(port, `/monitoring/${older.id}/${BIG}`, ['-o', out]);
  expect(dl).toMatchObject({ code: 0, stderr: '' });
  expect(await sha256File(out)).toBe(bigSha(older));
});

test('Python ftplib lists the root and a source folder and downloads a snapshot file whose SHA-256 matches the manifest', async () => {
  const script = `
import ftplib, hashlib, json, os, sys
ftp = ftplib.FTP()
ftp.connect('127.0.0.1', int(os.environ['FTP_PORT']), timeout=10)
ftp.login(os.environ['FTP_USER'], os.environ['FTP_PASSWORD'])
root = sorted(ftp.nlst('/'))
source = sorted(ftp.nlst(sys.argv[1]))
h = hashlib.sha256()
n = [0]
def take(b):
    h.update(b)
    n[0] += len(b)
ftp.retrbinary('RETR ' + sys.argv[2], take)
ftp.quit()
print(json.dumps({'root': root, 'source': source, 'sha256': h.hexdigest(), 'bytes': n[0]}))
`;
  const r = (await python(port, script, ['/monitoring', `/monitoring/${newer.id}/${BIG}`])) as Record<
    string,
    unknown
  >;
  expect(r.root).toEqual(['callcenter', 'catalog.json', 'monitoring']);
  expect(r.source).toEqual(visibleMonitoring());
  expect(r.bytes).toBe(2 << 20);
  expect(r.sha256).toBe(bigSha(newer));
});

test('basic-ftp lists the root and a source folder and downloads every file of a snapshot matching its manifest', async () => {
  const client = await connect(port);
  try {
    expect((await client.list('/')).map((f) => f.name).sort()).toEqual([
      'callcenter',
      'catalog.json',
      'monitoring',
    ]);
    const source = await client.list('/monitoring');
    expect(source.map((f) => f.name).sort()).toEqual(visibleMonitoring());
    expect(source.find((f) => f.name === older.id)?.isDirectory).toBe(true);
    const dest = path.join(work, 'basic-ftp-tree');
    await client.downloadToDir(dest, `/monitoring/${older.id}`);
    const m = older.manifest;
    for (const f of [m.schema.pre, m.schema.post, ...m.tables]) {
      expect({ file: f.file, sha256: await sha256File(path.join(dest, f.file)) }).toEqual({
        file: f.file,
        sha256: f.sha256,
      });
    }
    expect(await client.size(`/monitoring/${older.id}/${BIG}`)).toBe(3 << 20);
  } finally {
    client.close();
  }
});

test('catalog.json at the root and in each source folder lists the complete snapshots only, newest first', async () => {
  const client = await connect(port);
  const fetchJson = async (remote: string): Promise<Record<string, unknown>> => {
    const chunks: Buffer[] = [];
    await client.downloadTo(
      new Writable({
        write(chunk: Buffer, _enc, cb) {
          chunks.push(chunk);
          cb();
        },
      }),
      remote,
    );
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  };
  try {
    const all = await fetchJson('/catalog.json');
    expect(all.source).toBeNull();
    expect(all.snapshots).toEqual(
      [newer, older, other].map((s) => ({
        id: s.id,
        source: s.source,
        finishedAt: s.manifest.finishedAt,
        lsn: s.manifest.lsn,
        totalBytes: s.manifest.totalBytes,
        appVersion: s.manifest.appVersion,
        pgMajor: 15,
      })),
    );
    const mon = await fetchJson('/monitoring/catalog.json');
    expect(mon.source).toBe('monitoring');
    expect((mon.snapshots as { id: string }[]).map((s) => s.id)).toEqual([newer.id, older.id]);
    const cc = await fetchJson('/callcenter/catalog.json');
    expect((cc.snapshots as { id: string; appVersion: unknown }[]).map((s) => [s.id, s.appVersion])).toEqual([
      [other.id, null],
    ]);
    // the listed size is the size actually served
    const listed = (await client.list('/')).find((f) => f.name === 'catalog.json');
    expect(listed?.size).toBe(Buffer.byteLength(`${JSON.stringify(all, null, 2)}\n`));
  } finally {
    client.close();
  }
});

test('a partial snapshot is neither listed nor retrievable by its exact name', async () => {
  const hidden = `.${partial.id}.partial`;
  const client = await connect(port);
  try {
    const names = (await client.list('/monitoring')).map((f) => f.name);
    expect(names).not.toContain(hidden);
    expect(names).not.toContain(partial.id);
    await expect(client.list(`/monitoring/${hidden}`)).rejects.toMatchObject({ code: 451 });
    await expect(client.cd(`/monitoring/${hidden}`)).rejects.toMatchObject({ code: 550 });
    await expect(client.size(`/monitoring/${hidden}/manifest.json`)).rejects.toMatchObject({ code: 550 });
    const sink = new Writable({ write: (_c, _e, cb) => cb() });
    await expect(client.downloadTo(sink, `/monitoring/${hidden}/${BIG}`)).rejects.toMatchObject({
      code: 551,
    });
    // the folder without a manifest is not complete either
    await expect(client.cd('/monitoring/20261123T030000000Z')).rejects.toMatchObject({ code: 550 });
  } finally {
    client.close();
  }
  const viaCurl = await curl(port, `/monitoring/${hidden}/manifest.json`, [
    '-o',
    path.join(work, 'partial.json'),
  ]);
  expect(viaCurl.code).not.toBe(0);
  expect(fs.existsSync(path.join(work, 'partial.json'))).toBe(false);
});

test('an interrupted download resumed with REST gives a byte-identical file (basic-ftp and curl -C -)', async () => {
  const remote = `/monitoring/${older.id}/${BIG}`;
  const local = path.join(work, 'resumed.copy');
  // interrupt: the connection is cut after exactly `cutAt` bytes reached the local file
  const cutAt = 1_000_000;
  const fd = fs.openSync(local, 'w');
  const first = await connect(port);
  let written = 0;
  const cutting = new Writable({
    write(chunk: Buffer, _enc, cb) {
      const take = chunk.subarray(0, cutAt - written);
      fs.writeSync(fd, take);
      written += take.length;
      if (written < cutAt) return cb();
      first.close();
      cb(new Error('connection lost'));
    },
  });
  await expect(first.downloadTo(cutting, remote)).rejects.toThrow();
  fs.closeSync(fd);
  const partialSize = fs.statSync(local).size;
  expect(partialSize).toBe(cutAt);
  const second = await connect(port);
  try {
    await second.downloadTo(fs.createWriteStream(local, { flags: 'a' }), remote, partialSize);
  } finally {
    second.close();
  }
  expect(await sha256File(local)).toBe(bigSha(older));

  const cut = path.join(work, 'curl-resumed.copy');
  const original = fs.readFileSync(path.join(older.dir, BIG));
  fs.writeFileSync(cut, original.subarray(0, 1_234_567));
  const resumed = await curl(port, remote, ['-C', '-', '-o', cut]);
  expect(resumed).toMatchObject({ code: 0, stderr: '' });
  expect(sha256(fs.readFileSync(cut))).toBe(bigSha(older));
});
