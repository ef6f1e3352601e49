/**
 * Acceptance 7: kill -9 of `pgferry snapshot create` in the middle of a snapshot. The partial folder is
 * never listed, and the next command (or the server's start) removes it and takes over the dead lock.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { silentLogger } from '../../shared/log';
import { RunLock } from '../../backup-server/snapshot/run-lock';
import { SnapshotService } from '../../backup-server/snapshot/snapshot-service';
import { query, waitFor } from '../harness/db';
import {
  CLI,
  cli,
  entries,
  makeConfig,
  makeReplica,
  type TestReplica,
  tempDir,
  writeConfigFile,
} from './fixture';

const PARTIAL = /^\..+\.partial$/;

describe('a snapshot killed midway', () => {
  const dir = tempDir('snaps');
  const stateDir = tempDir('state');
  let replica: TestReplica;

  beforeAll(async () => {
    replica = await makeReplica('crash', { tables: 4 });
  });

  afterAll(async () => {
    await replica?.drop();
    fs.rmSync(dir, { recursive: true, force: true });
    fs.rmSync(stateDir, { recursive: true, force: true });
  });

  const options = (tableCopyDelayMs: number) => ({
    dir,
    stateDir,
    sources: [{ name: 'crash', url: replica.url }],
    snapshots: { faultInjection: { tableCopyDelayMs } },
  });

  it('leaves no partial folder after a restart, and list shows only complete snapshots', async () => {
    const fast = writeConfigFile(path.join(stateDir, 'fast.yaml'), options(0));
    const slow = writeConfigFile(path.join(stateDir, 'slow.yaml'), options(10_000));
    const complete = await new SnapshotService({
      config: makeConfig(options(0)),
      logger: silentLogger(),
    }).createSnapshot('crash');
    expect(complete.record.status).toBe('ok');

    // every table changed since that snapshot: the slow run must copy (not hard-link) them, so it is
    // still writing its partial folder when killed
    await query(
      replica.url,
      `UPDATE pgferry.state SET applied_lsn = '0/2000000'; UPDATE pgferry.table_changes SET last_change_lsn = '0/2000000'`,
    );
    const child = spawn(process.execPath, [CLI, 'snapshot', 'create', '--config', slow], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let childOutput = '';
    child.stdout?.on('data', (d: Buffer) => {
      childOutput += d.toString();
    });
    child.stderr?.on('data', (d: Buffer) => {
      childOutput += d.toString();
    });
    const exited = new Promise<NodeJS.Signals | null>((resolve) =>
      child.on('exit', (_code, signal) => resolve(signal)),
    );
    let childExited = false;
    void exited.then(() => {
      childExited = true;
    });
    await waitFor(
      'the partial snapshot folder',
      () => {
        if (childExited) throw new Error(`the snapshot process ended before writing: ${childOutput}`);
        return entries(dir, 'crash').some((e) => PARTIAL.test(e));
      },
      60_000,
    );
    const partial = entries(dir, 'crash').find((e) => PARTIAL.test(e))!;
    await waitFor('the data folder inside it', () => fs.existsSync(path.join(dir, 'crash', partial, 'data')));
    child.kill('SIGKILL');
    expect(await exited).toBe('SIGKILL');
    expect(entries(dir, 'crash')).toContain(partial);
    expect(fs.existsSync(path.join(stateDir, 'snapshot-run.lock'))).toBe(true);

    const listed = await cli(['snapshot', 'list', '--config', fast, '--json']);
    expect(listed.code).toBe(0);
    expect(JSON.parse(listed.stdout).map((s: { id: string }) => s.id)).toEqual([complete.record.id]);

    const next = await cli(['snapshot', 'create', '--config', fast]);
    expect(next.code).toBe(0);
    const id = next.stdout.split(/\s+/)[0];
    expect(next.stdout).toMatch(/^\d{8}T\d{9}Z {2}crash {2}ok {2}4 tables \(4 written, 0 linked\)/);
    expect(entries(dir, 'crash')).toEqual([complete.record.id, id].sort());
    const human = await cli(['snapshot', 'list', '--config', fast]);
    expect(human.stdout.split('\n')[0]).toMatch(
      /^SOURCE\s+ID\s+FINISHED \(local time\)\s+LSN\s+SIZE\s+TABLES\s+APP VERSION$/,
    );
    expect(human.stdout).toContain(`crash   ${id}`);
  });

  it('the server start removes partial folders and a lock left by a dead process', async () => {
    fs.mkdirSync(path.join(dir, 'crash', '.20260101T000000000Z.partial', 'data'), { recursive: true });
    fs.mkdirSync(path.join(dir, 'crash', '.20250101T000000000Z.deleting'));
    fs.writeFileSync(
      path.join(stateDir, 'snapshot-run.lock'),
      JSON.stringify({
        pid: 999_999_999,
        bootId: 'x',
        host: 'gone',
        what: 'a snapshot',
        since: '2026-01-01',
      }),
    );
    const service = new SnapshotService({ config: makeConfig(options(0)), logger: silentLogger() });
    await service.start();
    await service.stop();
    expect(entries(dir, 'crash').filter((e) => e.startsWith('.'))).toEqual([]);
    expect(fs.existsSync(path.join(stateDir, 'snapshot-run.lock'))).toBe(false);
  });

  it('refuses to run while another live process holds the run lock, naming it', async () => {
    const lock = RunLock.acquire(stateDir, 'a snapshot of crash (other process)');
    try {
      const service = new SnapshotService({ config: makeConfig(options(0)), logger: silentLogger() });
      const before = entries(dir, 'crash');
      const busy = await service.createSnapshot('crash');
      expect(busy.record).toMatchObject({ status: 'failed', errorCode: 'SNAPSHOT_BUSY' });
      expect(busy.record.error).toContain(
        `a snapshot of crash (other process) is already running in process ${process.pid}`,
      );
      expect(entries(dir, 'crash')).toEqual(before);
    } finally {
      lock.release();
    }
    expect(fs.existsSync(path.join(stateDir, 'snapshot-run.lock'))).toBe(false);
  });
});
