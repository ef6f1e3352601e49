/**
 * Acceptance 5: with a certificate configured and TLS required, a plain login is refused and FTPS sessions
 * (curl --ssl-reqd, basic-ftp secure: true) list and download. Python's FTP_TLS is not tested: its data
 * channel cannot work with ftp-srv (see the note in backup-server/ftp/ftp-server.ts).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { TLSSocket } from 'node:tls';
import { FTPError } from 'basic-ftp';
import { SnapshotFtpServer } from '../../backup-server/ftp';
import { isPgferryError } from '../../shared/errors';
import { silentLogger } from '../../shared/log';
import { writeSelfSignedCert } from '../support/self-signed';
import {
  connect,
  curl,
  type FakeSnapshot,
  freePortRange,
  ftpOptions,
  python,
  sha256File,
  startServer,
  tempDir,
  writeSnapshot,
} from './fixtures';

const BIG = 'tables/public.big.copy';

let root: string;
let certDir: string;
let certFile: string;
let keyFile: string;
let snap: FakeSnapshot;
let server: SnapshotFtpServer;
let port: number;

beforeAll(async () => {
  root = tempDir('pgferry-ftp-tls-root-');
  certDir = tempDir('pgferry-ftp-tls-cert-');
  ({ certFile, keyFile } = writeSelfSignedCert(certDir));
  snap = writeSnapshot(root, {
    source: 'monitoring',
    at: new Date('2026-11-20T03:00:00Z'),
    tables: { big: 3 << 20 },
  });
  server = await startServer(
    ftpOptions(root, await freePortRange(), { tls: { certFile, keyFile, required: true } }),
  );
  port = server.port ?? 0;
});

afterAll(async () => {
  await server?.stop();
  fs.rmSync(root, { recursive: true, force: true });
  fs.rmSync(certDir, { recursive: true, force: true });
});

test('with TLS required a plain login is refused before the password is sent', async () => {
  const err = await connect(port).then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(FTPError);
  expect(err).toMatchObject({ code: 530, message: expect.stringMatching(/TLS required/) });
  const plainCurl = await curl(port, '/');
  expect(plainCurl.code).toBe(67);
  const py = await python(
    port,
    `
import ftplib, json, os
ftp = ftplib.FTP()
ftp.connect('127.0.0.1', int(os.environ['FTP_PORT']), timeout=10)
try:
    print(json.dumps(ftp.sendcmd('USER ' + os.environ['FTP_USER'])))
except ftplib.error_perm as e:
    print(json.dumps(str(e)))
`,
  );
  expect(py).toMatch(/^530 TLS required/);
});

test('curl --ssl-reqd lists and downloads over explicit FTPS', async () => {
  const list = await curl(port, '/monitoring/', ['--ssl-reqd', '-k']);
  expect(list).toMatchObject({ code: 0, stderr: '' });
  expect(list.stdout).toContain(snap.id);
  const out = path.join(certDir, 'curl.copy');
  const dl = await curl(port, `/monitoring/${snap.id}/${BIG}`, ['--ssl-reqd', '-k', '-o', out]);
  expect(dl).toMatchObject({ code: 0, stderr: '' });
  expect(await sha256File(out)).toBe(snap.manifest.tables[0].sha256);
});

test('basic-ftp with secure: true lists and downloads over explicit FTPS', async () => {
  const client = await connect(port, { secure: true });
  try {
    expect(client.ftp.socket).toBeInstanceOf(TLSSocket);
    expect((await client.list('/monitoring')).map((f) => f.name).sort()).toEqual([snap.id, 'catalog.json']);
    const out = path.join(certDir, 'basic-ftp.copy');
    await client.downloadTo(out, `/monitoring/${snap.id}/${BIG}`);
    expect(await sha256File(out)).toBe(snap.manifest.tables[0].sha256);
  } finally {
    client.close();
  }
});

test('an unreadable certificate fails start() with CONFIG_INVALID naming ftp.tls.certFile', async () => {
  const missing = path.join(certDir, 'missing.pem');
  const bad = new SnapshotFtpServer(
    ftpOptions(root, '30000-30009', { tls: { certFile: missing, keyFile, required: false } }),
    silentLogger(),
  );
  const err = await bad.start().then(
    () => null,
    (e: unknown) => e,
  );
  expect(isPgferryError(err, 'CONFIG_INVALID')).toBe(true);
  expect((err as Error).message).toMatch(
    /^ftp\.tls\.certFile: cannot read the certificate .*missing\.pem" \(ENOENT\)/,
  );
  expect(bad.running).toBe(false);
});
