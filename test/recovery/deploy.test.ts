/**
 * deploy/: install.sh into a prefix in a temp folder (no systemd, no system user), the installed program
 * running from there, install-in-recovery-mode through the real FTP server, and the example configs kept in
 * line with the config schemas. (Acceptance 6's agent full sync after the recovery belongs to replication.)
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import YAML from 'yaml';
import type { z } from 'zod';
import type { SnapshotFtpServer } from '../../backup-server/ftp';
import { agentConfigSchema } from '../../shared/config/agent-config';
import { serverConfigSchema } from '../../shared/config/server-config';
import { PGFERRY_VERSION } from '../../shared/version';
import { createDatabase, dropDatabase, query, sharedClusters, tableHash, uniqueName } from '../harness/db';
import { makeSnapshotFixture } from './fixtures';
import { PASSWORD, startFtp } from './ftp-harness';

const REPO = path.resolve(__dirname, '../..');
const INSTALL = path.join(REPO, 'deploy/install.sh');
const { primary, backup } = sharedClusters();
const sourceDb = uniqueName('deploy_src');
const targetDb = uniqueName('deploy_dst');
let tmp: string;
let root: string;
let server: SnapshotFtpServer;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function sh(cmd: string, args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(cmd, args, { env: { ...process.env, ...env }, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

beforeAll(async () => {
  if (!fs.existsSync(path.join(REPO, 'dist/shared/cli/main.js'))) {
    throw new Error('deploy tests install the built program: run "npm run build" first (npm test does)');
  }
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pgferry-deploy-'));
  root = path.join(tmp, 'snapshots');
  const url = await createDatabase(primary, sourceDb);
  await query(
    url,
    `CREATE TABLE hosts (id serial PRIMARY KEY, name text); INSERT INTO hosts (name) SELECT 'h' || g FROM generate_series(1, 40) g`,
  );
  await makeSnapshotFixture({ url, root, appVersion: '5.2.1' });
  server = await startFtp(root);
});

afterAll(async () => {
  await server?.stop();
  await dropDatabase(primary, sourceDb);
  await dropDatabase(backup, targetDb);
  fs.rmSync(tmp, { recursive: true, force: true });
});

test('install.sh --role agent --test-mode installs the program, a pgferry that runs from the prefix, and the commented config', async () => {
  const prefix = path.join(tmp, 'agent-prefix');
  const r = await sh(INSTALL, ['--role', 'agent', '--prefix', prefix, '--test-mode']);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  for (const f of [
    'bin/pgferry',
    'lib/pgferry/dist/shared/cli/main.js',
    'lib/pgferry/node_modules/pg/package.json',
    'etc/agent.yaml',
    'etc/agent.example.yaml',
    'lib/pgferry/deploy/systemd/pgferry-agent.service',
  ]) {
    expect({ f, present: fs.existsSync(path.join(prefix, f)) }).toEqual({ f, present: true });
  }
  expect(fs.existsSync(path.join(prefix, 'lib/pgferry/node_modules/typescript'))).toBe(false);
  expect(fs.existsSync(path.join(prefix, 'lib/pgferry/dist/test/bench'))).toBe(false);
  const help = await sh(path.join(prefix, 'bin/pgferry'), ['recover', '--help']);
  expect(help.stdout).toMatch(/Examples:/);
  const v = await sh(path.join(prefix, 'bin/pgferry'), ['--version']);
  expect(v.stdout.trim()).toBe(PGFERRY_VERSION);
  expect(r.stdout).toMatch(/systemd unit not installed/);

  // a second run upgrades in place and keeps the edited config
  fs.appendFileSync(path.join(prefix, 'etc/agent.yaml'), '# edited\n');
  const again = await sh(INSTALL, ['--role', 'agent', '--prefix', prefix, '--test-mode']);
  expect(again.code).toBe(0);
  expect(again.stdout).toMatch(/kept the existing/);
  expect(fs.readFileSync(path.join(prefix, 'etc/agent.yaml'), 'utf8')).toMatch(/# edited\n$/);
});

test('install.sh --role agent --recover restores the newest snapshot into source.url of the installed config', async () => {
  const prefix = path.join(tmp, 'recover-prefix');
  const config = path.join(tmp, 'agent.yaml');
  fs.writeFileSync(
    config,
    YAML.stringify({
      source: { name: 'monitoring', url: backup.url(targetDb), appVersion: '5.2.1' },
      server: { host: '127.0.0.1', passwordFile: '/dev/null' },
    }),
  );
  const r = await sh(
    INSTALL,
    [
      '--role',
      'agent',
      '--prefix',
      prefix,
      '--test-mode',
      '--config',
      config,
      '--recover',
      '--host',
      '127.0.0.1',
      '--port',
      String(server.port),
      '--latest',
      '--app-version',
      '5.2.1',
      '--work-dir',
      path.join(tmp, 'work'),
    ],
    { PGFERRY_FTP_PASSWORD: PASSWORD },
  );
  expect(r.stderr).not.toMatch(/error/i);
  expect(r.code).toBe(0);
  expect(r.stdout).toMatch(/restored snapshot monitoring\/.* into database "deploy_dst_.*" \(created\)/);
  expect(await tableHash(backup.url(targetDb), 'public.hosts')).toEqual(
    await tableHash(primary.url(sourceDb), 'public.hosts'),
  );
  expect(r.stdout).toMatch(
    /Start it with: .*recover-prefix\/bin\/pgferry agent --config .*recover-prefix\/etc\/agent\.yaml/,
  );
});

test('install.sh refuses a missing role, an unknown option and recovery options without --recover, saying what to do', async () => {
  const prefix = path.join(tmp, 'refused');
  expect((await sh(INSTALL, ['--prefix', prefix])).stderr).toMatch(/--role agent\|server is required/);
  expect((await sh(INSTALL, ['--role', 'agent', '--bogus'])).stderr).toMatch(
    /unknown option --bogus \(see --help\)/,
  );
  expect((await sh(INSTALL, ['--role', 'agent', '--prefix', prefix, '--latest'])).stderr).toMatch(
    /--latest is a recovery option: add --recover/,
  );
  expect((await sh(INSTALL, ['--role', 'server', '--prefix', prefix, '--recover'])).stderr).toMatch(
    /use it with --role agent/,
  );
  expect(fs.existsSync(prefix)).toBe(false);
  expect((await sh(INSTALL, ['--help'])).stdout).toMatch(/Examples:/);
});

/** Every key of the parsed (defaulted) config is written in the example, as an option or a commented one. */
function missingKeys(text: string, value: unknown, where = ''): string[] {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return [];
  const out: string[] = [];
  for (const [k, v] of Object.entries(value)) {
    if (!new RegExp(`^[\\s#-]*${k}:`, 'm').test(text)) out.push(`${where}${k}`);
    out.push(...missingKeys(text, Array.isArray(v) ? v[0] : v, `${where}${k}.`));
  }
  return out;
}

test.each([
  [
    'agent',
    agentConfigSchema as z.ZodType,
    ['appVersion', 'appVersionQuery', 'password', 'fingerprint', 'caFile', 'serverName', 'pgBinDir', 'file'],
  ],
  [
    'server',
    serverConfigSchema as z.ZodType,
    [
      'timezone',
      'maintenanceWindow',
      'pre',
      'post',
      'pgBinDir',
      'passiveAddress',
      'passwordHash',
      'certFile',
      'keyFile',
      'required',
      'command',
      'webhookUrl',
      'smtpHost',
      'replicaUrl',
      'file',
    ],
  ],
])('deploy/%s.example.yaml parses with its schema and mentions every option', (role, schema, optional) => {
  const text = fs.readFileSync(path.join(REPO, `deploy/${role}.example.yaml`), 'utf8');
  const parsed = schema.safeParse(YAML.parse(text));
  expect(parsed.error?.issues ?? []).toEqual([]);
  expect(missingKeys(text, parsed.data)).toEqual([]);
  for (const k of optional)
    expect({ k, mentioned: new RegExp(`^[\\s#-]*${k}:`, 'm').test(text) }).toEqual({ k, mentioned: true });
});
