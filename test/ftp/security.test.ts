/**
 * Acceptance 2 and 3: logins (anonymous, wrong password, unknown user, throttling per address), write
 * commands, and every way out of the root (.., absolute, backslashes, percent-encoding, symlinks), with real
 * clients on loopback. Error replies must never show a server path.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { FTPError } from 'basic-ftp';
import type { SnapshotFtpServer } from '../../backup-server/ftp';
import { waitFor } from '../harness/db';
import {
  connect,
  curl,
  type FakeSnapshot,
  freePortRange,
  ftpOptions,
  PASSWORD,
  python,
  run,
  sha256File,
  startServer,
  tempDir,
  USER,
  writeSnapshot,
} from './fixtures';

const SECRET = `top-secret-${process.pid}-${Date.now()}`;

let root: string;
let outside: string;
let server: SnapshotFtpServer;
let port: number;
let passivePorts: string;
let snap: FakeSnapshot;

/** Every reply text the tests saw; checked at the end for server paths. */
const replies: string[] = [];

async function refusal(p: Promise<unknown>): Promise<FTPError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof FTPError) {
      replies.push(e.message);
      return e;
    }
    throw e;
  }
  throw new Error('expected the server to refuse');
}

const sink = () => new Writable({ write: (_c, _e, cb) => cb() });

function treeState(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      out.push(`${path.relative(dir, p)}:${e.isDirectory() ? 'dir' : fs.lstatSync(p).size}`);
      if (e.isDirectory()) walk(p);
    }
  };
  walk(dir);
  return out.sort();
}

beforeAll(async () => {
  root = tempDir('pgferry-ftp-sec-root-');
  outside = tempDir('pgferry-ftp-sec-outside-');
  fs.writeFileSync(path.join(outside, 'secret.txt'), SECRET);
  snap = writeSnapshot(root, { source: 'monitoring', at: new Date('2026-11-20T03:00:00Z') });
  // symlinks inside the root pointing outside: a folder in a snapshot, a file in a snapshot, a source folder
  fs.symlinkSync(outside, path.join(snap.dir, 'escape'));
  fs.symlinkSync(path.join(outside, 'secret.txt'), path.join(snap.dir, 'tables', 'leak.copy'));
  fs.symlinkSync(outside, path.join(root, 'elsewhere'));
  passivePorts = await freePortRange();
  // many refused logins below come from 127.0.0.1: only the throttling test's own server locks
  server = await startServer(ftpOptions(root, passivePorts, { maxFailures: 1000 }));
  port = server.port ?? 0;
});

afterAll(async () => {
  await server?.stop();
  fs.rmSync(root, { recursive: true, force: true });
  fs.rmSync(outside, { recursive: true, force: true });
});

describe('logins', () => {
  test('anonymous, a wrong password and an unknown user are refused with one identical reply', async () => {
    const anonymous = await refusal(connect(port, { user: 'anonymous', password: 'guest@example.com' }));
    const wrong = await refusal(connect(port, { password: 'not-the-password' }));
    const unknown = await refusal(connect(port, { user: 'root', password: PASSWORD }));
    expect([anonymous.code, wrong.code, unknown.code]).toEqual([530, 530, 530]);
    expect(wrong.message).toBe(unknown.message);
    expect(anonymous.message).toBe(unknown.message);
    const py = (await python(
      port,
      `
import ftplib, json, os
out = []
for user, pw in (('anonymous', 'guest@'), (os.environ['FTP_USER'], 'wrong')):
    ftp = ftplib.FTP()
    ftp.connect('127.0.0.1', int(os.environ['FTP_PORT']), timeout=10)
    try:
        ftp.login(user, pw)
        out.append('accepted')
    except ftplib.error_perm as e:
        out.append(str(e))
    ftp.close()
print(json.dumps(out))
`,
    )) as string[];
    expect(py).toEqual([wrong.message, wrong.message]);
    // curl without credentials logs in as anonymous: "Access denied: 530" (exit 67)
    const anon = await run('curl', ['-sS', '--max-time', '10', `ftp://127.0.0.1:${port}/`]);
    expect(anon.code).toBe(67);
  });

  test('after maxFailures failures from one address it is locked for lockSeconds, other addresses are not, then the right password works', async () => {
    const lockSeconds = 1.5;
    const locking = await startServer(
      ftpOptions(root, await freePortRange(), { maxFailures: 3, lockSeconds }),
    );
    const lport = locking.port ?? 0;
    try {
      for (let i = 0; i < 3; i++) {
        expect((await refusal(connect(lport, { password: `wrong-${i}` }))).message).toMatch(
          /Login incorrect/,
        );
      }
      const lockedAt = Date.now();
      const locked = await refusal(connect(lport));
      expect(locked.code).toBe(530);
      expect(locked.message).toMatch(/Too many failed logins/);
      // another address is not affected (curl binds 127.0.0.2 as its source)
      const other = await run('curl', [
        '-sS',
        '--max-time',
        '10',
        '--interface',
        '127.0.0.2',
        '--user',
        `${USER}:${PASSWORD}`,
        `ftp://127.0.0.1:${lport}/`,
      ]);
      expect(other.stdout).toMatch(/monitoring/);
      await waitFor(
        'the right password to be accepted after the lock',
        async () => {
          (await connect(lport)).close();
          return true;
        },
        10_000,
        250,
      );
      expect(Date.now() - lockedAt).toBeGreaterThanOrEqual(lockSeconds * 1000 - 300);
    } finally {
      await locking.stop();
    }
  });
});

describe('read-only', () => {
  const file = () => `/monitoring/${snap.id}/schema-pre.sql`;
  const commands = () => [
    'STOR new.txt',
    'APPE schema-pre.sql',
    'STOU',
    `DELE ${file()}`,
    `RMD /monitoring/${snap.id}`,
    'MKD /monitoring/new',
    `RNFR ${file()}`,
    'RNTO /monitoring/renamed.sql',
    `SITE CHMOD 777 ${file()}`,
  ];

  test('each write command gets a 5xx reply, before and after login, and nothing changes on disk', async () => {
    const before = treeState(root);
    const client = await connect(port);
    try {
      for (const cmd of commands()) {
        const err = await refusal(client.send(cmd));
        expect({ cmd, code: Math.floor(err.code / 100) }).toEqual({ cmd, code: 5 });
      }
      await refusal(client.uploadFrom(Readable.from([Buffer.from('x')]), 'x.txt'));
    } finally {
      client.close();
    }
    const py = (await python(
      port,
      `
import ftplib, json, os, sys
ftp = ftplib.FTP()
ftp.connect('127.0.0.1', int(os.environ['FTP_PORT']), timeout=10)
before = []
for cmd in sys.argv[1:]:
    try:
        before.append(ftp.sendcmd(cmd))
    except ftplib.Error as e:
        before.append(str(e))
ftp.login(os.environ['FTP_USER'], os.environ['FTP_PASSWORD'])
after = []
for cmd in sys.argv[1:]:
    try:
        after.append(ftp.sendcmd(cmd))
    except ftplib.Error as e:
        after.append(str(e))
ftp.quit()
print(json.dumps({'before': before, 'after': after}))
`,
      commands(),
    )) as { before: string[]; after: string[] };
    for (const reply of [...py.before, ...py.after]) expect(reply).toMatch(/^5\d\d /);
    expect(treeState(root)).toEqual(before);
  });
});

describe('confinement', () => {
  const escapes = [
    '../../etc/passwd',
    '/etc/passwd',
    '/../../../../etc/passwd',
    '..\\..\\etc\\passwd',
    '%2e%2e/%2e%2e/etc/passwd',
    '%2E%2E%2F%2E%2E%2Fetc%2Fpasswd',
  ];

  test('CWD ../.. fails and the session stays inside the root', async () => {
    const client = await connect(port);
    try {
      expect((await refusal(client.send('CWD ../..'))).code).toBe(550);
      expect(await client.pwd()).toBe('/');
      await client.cd('/monitoring');
      expect((await refusal(client.send('CWD ../..'))).code).toBe(550);
      expect((await refusal(client.send('CWD ..\\..'))).code).toBe(550);
      expect(await client.pwd()).toBe('/monitoring');
      await client.send('CDUP');
      expect(await client.pwd()).toBe('/');
      expect((await refusal(client.send('CDUP'))).code).toBe(550);
    } finally {
      client.close();
    }
  });

  test('RETR and SIZE of paths outside the root fail: .., absolute, backslashes, percent-encoded', async () => {
    const client = await connect(port);
    try {
      for (const p of [...escapes, `monitoring/${snap.id}/../../../etc/passwd`]) {
        expect({ p, code: (await refusal(client.downloadTo(sink(), p))).code }).toEqual({ p, code: 551 });
        expect({ p, code: (await refusal(client.size(p))).code }).toEqual({ p, code: 550 });
      }
    } finally {
      client.close();
    }
    const py = (await python(
      port,
      `
import ftplib, json, os, sys
ftp = ftplib.FTP()
ftp.connect('127.0.0.1', int(os.environ['FTP_PORT']), timeout=10)
ftp.login(os.environ['FTP_USER'], os.environ['FTP_PASSWORD'])
out = []
for p in sys.argv[1:]:
    got = []
    try:
        ftp.retrbinary('RETR ' + p, got.append)
        out.append('served ' + repr(b''.join(got)[:40]))
    except ftplib.error_perm as e:
        out.append(str(e))
ftp.quit()
print(json.dumps(out))
`,
      escapes,
    )) as string[];
    for (const reply of py) expect(reply).toMatch(/^551 /);
    replies.push(...py);
    for (const url of ['/../../etc/passwd', '/%2e%2e/%2e%2e/etc/passwd', '/elsewhere/secret.txt']) {
      const r = await curl(port, url, ['--path-as-is']);
      expect({
        url,
        failed: r.code !== 0,
        leaked: r.stdout.includes(SECRET) || r.stdout.includes('root:'),
      }).toEqual({
        url,
        failed: true,
        leaked: false,
      });
    }
  });

  test('symlinks inside the root that point outside are neither listed nor followed', async () => {
    const client = await connect(port);
    try {
      expect((await client.list('/')).map((f) => f.name)).not.toContain('elsewhere');
      const inSnapshot = (await client.list(`/monitoring/${snap.id}`)).map((f) => f.name);
      expect(inSnapshot).toContain('schema-pre.sql');
      expect(inSnapshot).not.toContain('escape');
      expect((await client.list(`/monitoring/${snap.id}/tables`)).map((f) => f.name)).not.toContain(
        'leak.copy',
      );
      const received: Buffer[] = [];
      const collect = new Writable({
        write(c: Buffer, _e, cb) {
          received.push(c);
          cb();
        },
      });
      for (const p of [
        `/monitoring/${snap.id}/escape/secret.txt`,
        `/monitoring/${snap.id}/tables/leak.copy`,
        '/elsewhere/secret.txt',
      ]) {
        expect({ p, code: (await refusal(client.downloadTo(collect, p))).code }).toEqual({ p, code: 551 });
      }
      expect((await refusal(client.cd(`/monitoring/${snap.id}/escape`))).code).toBe(550);
      expect((await refusal(client.cd('/elsewhere'))).code).toBe(550);
      expect((await refusal(client.list('/elsewhere'))).code).toBe(451);
      expect(Buffer.concat(received).toString()).not.toContain(SECRET);
      // a real file of the snapshot is still served
      const local = path.join(outside, 'pre.sql');
      await client.downloadTo(local, `/monitoring/${snap.id}/schema-pre.sql`);
      expect(await sha256File(local)).toBe(snap.manifest.schema.pre.sha256);
    } finally {
      client.close();
    }
  });

  test('error replies never contain a server path', () => {
    expect(replies.length).toBeGreaterThan(30);
    for (const reply of replies) {
      expect(reply).not.toContain(root);
      expect(reply).not.toContain(outside);
      expect(reply).not.toContain(os.tmpdir());
      expect(reply).not.toContain(SECRET);
    }
  });
});
