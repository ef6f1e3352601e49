/** The FTP server's pieces without a network: path rules, the snapshot tree, the file system, the log adapter. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { FtpConnection } from 'ftp-srv';
import { bunyanToWinston } from '../../backup-server/ftp/bunyan-adapter';
import { FtpReplyError } from '../../backup-server/ftp/ftp-srv-internals';
import { ReadOnlyFs } from '../../backup-server/ftp/read-only-fs';
import { clientSegments, SnapshotTree } from '../../backup-server/ftp/snapshot-tree';
import { createLogger, type LogEntry, silentLogger } from '../../shared/log';
import { tempDir, writeSnapshot } from './fixtures';

let root: string;

beforeAll(() => {
  root = tempDir('pgferry-ftp-units-');
});

afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

test.each([
  ['/', undefined, []],
  ['/', '', []],
  ['/', 'monitoring', ['monitoring']],
  ['/monitoring', 'x/./y', ['monitoring', 'x', 'y']],
  ['/monitoring', '..', []],
  ['/monitoring', '/other//a/', ['other', 'a']],
  ['/monitoring/a', '../b', ['monitoring', 'b']],
  ['/', '..', null],
  ['/', '../..', null],
  ['/monitoring', '../../etc/passwd', null],
  ['/', '/../../../../etc/passwd', null],
  ['/', '..\\..\\etc\\passwd', null],
  ['/', 'a\\b', null],
  ['/', 'a\u0000b', null],
  ['/', 'a\rb', null],
  ['/', '%2e%2e/%2e%2e/etc/passwd', ['%2e%2e', '%2e%2e', 'etc', 'passwd']],
])('client path: from %j, %j resolves to %j', (cwd, p, expected) => {
  expect(clientSegments(cwd, p)).toEqual(expected);
});

test('symlinks that stay in the root but lead into a partial or incomplete snapshot are invisible', async () => {
  const done = writeSnapshot(root, { source: 'mon', at: new Date('2026-11-20T03:00:00Z') });
  const partial = writeSnapshot(root, { source: 'mon', at: new Date('2026-11-21T03:00:00Z'), partial: true });
  const incomplete = path.join(root, 'mon', '20261122T030000000Z');
  fs.mkdirSync(incomplete);
  fs.writeFileSync(path.join(incomplete, 'data.copy'), 'x');
  fs.symlinkSync(partial.dir, path.join(done.dir, 'to-partial'));
  fs.symlinkSync(path.join(incomplete, 'data.copy'), path.join(done.dir, 'to-incomplete.copy'));
  fs.symlinkSync(path.join(done.dir, 'schema-pre.sql'), path.join(done.dir, 'alias.sql'));
  fs.symlinkSync(done.dir, path.join(root, 'mon', '20261123T030000000Z'));
  const tree = new SnapshotTree(root);
  expect(await tree.resolve(['mon', done.id, 'to-partial', 'manifest.json'])).toBeNull();
  expect(await tree.resolve(['mon', done.id, 'to-incomplete.copy'])).toBeNull();
  // a symlinked snapshot folder is not a snapshot, even when it points at a complete one
  expect(await tree.resolve(['mon', '20261123T030000000Z', 'schema-pre.sql'])).toBeNull();
  // a link to a file of the same snapshot is fine
  expect(await tree.resolve(['mon', done.id, 'alias.sql'])).toMatchObject({
    kind: 'file',
    size: done.manifest.schema.pre.bytes,
  });
  expect((await tree.children(['mon'])).map((c) => c.name)).toEqual([done.id, 'catalog.json']);
  expect((await tree.children(['mon', done.id])).map((c) => c.name)).toEqual([
    'alias.sql',
    'manifest.json',
    'schema-post.sql',
    'schema-pre.sql',
    'tables',
  ]);
  // a snapshot folder that does not exist yet: the tree is empty but the root catalog exists
  const empty = new SnapshotTree(path.join(root, 'not-yet'));
  expect((await empty.children([])).map((c) => c.name)).toEqual(['catalog.json']);
  expect(await empty.resolve(['mon'])).toBeNull();
});

test('the file system refuses every write itself, without relying on the command blacklist', async () => {
  const rofs = new ReadOnlyFs({} as FtpConnection, {
    tree: new SnapshotTree(root),
    root,
    logger: silentLogger(),
  });
  const attempts: Array<() => unknown> = [
    () => rofs.write(),
    () => rofs.delete(),
    () => rofs.mkdir(),
    () => rofs.rename(),
    () => rofs.chmod(),
    () => rofs.getUniqueName(),
  ];
  for (const attempt of attempts) {
    const err = await Promise.resolve()
      .then(attempt)
      .then(
        () => null,
        (e: unknown) => e,
      );
    expect(err).toBeInstanceOf(FtpReplyError);
    expect(err).toMatchObject({
      code: 550,
      message: 'Read-only server: snapshots cannot be changed over FTP',
    });
  }
  await expect(rofs.get('../../etc/passwd')).rejects.toMatchObject({
    code: 550,
    message: 'No such file or directory',
  });
  await expect(rofs.chdir('/mon/.20261121T030000000Z.partial')).rejects.toMatchObject({ code: 550 });
  expect(rofs.currentDirectory()).toBe('/');
});

test('ftp-srv records reach winston tagged "ftp": trace dropped, client errors as warnings, our refusals as debug', () => {
  const entries: LogEntry[] = [];
  const dir = tempDir('pgferry-ftp-log-');
  const logger = createLogger({
    level: 'debug',
    file: path.join(dir, 'l.log'),
    sink: (e) => entries.push(e),
  });
  const log = bunyanToWinston(logger).child({ id: 'c1', ip: '127.0.0.1' });
  log.trace(['USER backup', 'PASS secret']);
  log.info({ port: 2121 }, 'Listening');
  log.info('Closing connections:', 2);
  log.error(new Error('read ECONNRESET'));
  log.error(new FtpReplyError('No such file or directory'));
  log.error('[Process Letter] Socket Write Error', { error: 'EPIPE' });
  log.fatal(new Error('boom'), 'server failed');
  logger.close();
  fs.rmSync(dir, { recursive: true, force: true });
  const seen = entries.map(({ level, message, component, id, port, error }) => ({
    level,
    message,
    component,
    id,
    port,
    error,
  }));
  expect(seen).toEqual([
    { level: 'info', message: 'Listening', component: 'ftp', id: 'c1', port: 2121, error: undefined },
    {
      level: 'info',
      message: 'Closing connections: 2',
      component: 'ftp',
      id: 'c1',
      port: undefined,
      error: undefined,
    },
    {
      level: 'warn',
      message: 'read ECONNRESET',
      component: 'ftp',
      id: 'c1',
      port: undefined,
      error: 'read ECONNRESET',
    },
    {
      level: 'debug',
      message: 'No such file or directory',
      component: 'ftp',
      id: 'c1',
      port: undefined,
      error: 'No such file or directory',
    },
    {
      level: 'warn',
      message: '[Process Letter] Socket Write Error',
      component: 'ftp',
      id: 'c1',
      port: undefined,
      error: 'EPIPE',
    },
    { level: 'error', message: 'server failed', component: 'ftp', id: 'c1', port: undefined, error: 'boom' },
  ]);
  expect(JSON.stringify(entries)).not.toContain('secret');
});
