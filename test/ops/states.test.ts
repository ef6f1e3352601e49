/**
 * Acceptance (issue 6, item 1): the agent SIGSTOPped → DEAD within deadAfterSeconds plus one heartbeat
 * interval, the hook run once; SIGCONT → LIVE, hook run; SIGTERM → CLOSE, and no DEAD follows while it
 * stays stopped.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { BackupServer } from '../../backup-server/server';
import { createDatabase, dropDatabase, query, sharedClusters, uniqueName, waitFor } from '../harness/db';
import {
  agentConfigFor,
  memoryLogger,
  type Proc,
  serverConfigFor,
  spawnCli,
  startServerInProcess,
  tempDir,
  waitForOutput,
  writeYaml,
} from '../support/pgferry';

const { primary, backup } = sharedClusters();
const source = { name: 'states', password: 'pw-states', database: uniqueName('src_states') };
const DEAD_AFTER_S = 2;
const HEARTBEAT_S = 0.5;

afterAll(async () => {
  await dropDatabase(primary, source.database);
  await dropDatabase(backup, 'pgferry_states');
});

interface HookCall {
  env: string;
  json: { state: string; previousState: string; source: string; time: string; appliedLsn: string | null };
}

function hookCalls(file: string): HookCall[] {
  if (!fs.existsSync(file)) return [];
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const [env, json] = l.split('\t');
      return { env, json: JSON.parse(json) as HookCall['json'] };
    });
}

it('turns a stopped agent DEAD in time, LIVE when it resumes, CLOSE on SIGTERM with no DEAD after, running the hook each time', async () => {
  const url = await createDatabase(primary, source.database);
  await query(url, 'CREATE TABLE t (id int PRIMARY KEY)');
  await query(url, 'INSERT INTO t SELECT generate_series(1, 100)');
  const dir = tempDir('states');
  const calls = path.join(dir, 'hook-calls.tsv');
  const script = path.join(dir, 'hook.sh');
  fs.writeFileSync(
    script,
    `payload=$(cat)\nprintf '%s %s %s %s\\t%s\\n' "$PGFERRY_STATE" "$PGFERRY_SOURCE" "$PGFERRY_TIME" "$PGFERRY_APPLIED_LSN" "$payload" >> ${calls}\n`,
  );
  const { log, entries } = memoryLogger();
  let server: BackupServer | null = null;
  let agent: Proc | null = null;
  try {
    server = await startServerInProcess(
      await serverConfigFor(backup, [source], dir, {
        heartbeat: { deadAfterSeconds: DEAD_AFTER_S },
        hooks: { command: ['/bin/sh', script], timeoutSeconds: 5, retries: 0 },
      }),
      log,
    );
    const s = server;
    const state = () => s.states.view('states')?.state;
    const yaml = writeYaml(
      dir,
      'agent.yaml',
      agentConfigFor(primary, source, s.port, { heartbeat: { intervalSeconds: HEARTBEAT_S } }),
    );
    agent = spawnCli(['agent', '--config', yaml]);
    const a = agent;
    await waitForOutput(a, /streaming changes/, 60_000);
    await waitFor('LIVE', () => state() === 'LIVE');
    await waitFor('the LIVE hook', () => hookCalls(calls).length === 1);
    // the first LIVE may come during the initial copy, before anything is applied: no LSN yet
    expect(hookCalls(calls)[0].env).toMatch(/^LIVE states \d{4}-\d\d-\d\dT\S+ ([0-9A-F]+\/[0-9A-F]+)?$/);

    const stoppedAt = Date.now();
    a.kill('SIGSTOP');
    await waitFor('DEAD', () => state() === 'DEAD', 10_000, 20);
    const dead = s.states.view('states')?.transitions.at(-1);
    expect(dead).toMatchObject({ from: 'LIVE', to: 'DEAD' });
    const tookMs = Date.parse(dead?.at ?? '') - stoppedAt;
    expect(tookMs).toBeLessThanOrEqual((DEAD_AFTER_S + HEARTBEAT_S) * 1000);
    expect(tookMs).toBeGreaterThanOrEqual((DEAD_AFTER_S - HEARTBEAT_S) * 1000);
    await waitFor('the DEAD hook', () => hookCalls(calls).length === 2);
    expect(hookCalls(calls)[1].env).toMatch(/^DEAD states \S+ [0-9A-F]+\/[0-9A-F]+$/);
    expect(hookCalls(calls)[1].json).toMatchObject({
      state: 'DEAD',
      previousState: 'LIVE',
      source: 'states',
    });

    a.kill('SIGCONT');
    await waitFor('LIVE again', () => state() === 'LIVE');
    await waitFor('the second LIVE hook', () => hookCalls(calls).length === 3);
    expect(hookCalls(calls).map((c) => c.json.state)).toEqual(['LIVE', 'DEAD', 'LIVE']);

    a.kill('SIGTERM');
    expect(await a.exited).toBe(0);
    await waitFor('CLOSE', () => state() === 'CLOSE', 10_000).catch((e: Error) => {
      const serverLog = entries.map((x) => `${x.timestamp} ${x.level} ${x.message}`).join('\n');
      throw new Error(
        `${e.message}\n--- agent\n${a.output().slice(-4000)}\n--- server\n${serverLog.slice(-4000)}`,
      );
    });
    const closedAt = Date.now();
    await waitFor('the CLOSE hook', () => hookCalls(calls).length === 4);
    // the DEAD check has run past the moment a LIVE source would have turned DEAD
    await waitFor(
      'DEAD checks beyond deadAfterSeconds',
      () => s.states.lastCheckAt > closedAt + (DEAD_AFTER_S + 1) * 1000,
      10_000,
    );
    expect(state()).toBe('CLOSE');
    expect(hookCalls(calls).map((c) => c.json.state)).toEqual(['LIVE', 'DEAD', 'LIVE', 'CLOSE']);
    expect(s.states.view('states')?.transitions.map((t) => t.to)).toEqual(['LIVE', 'DEAD', 'LIVE', 'CLOSE']);
  } finally {
    agent?.kill('SIGCONT');
    agent?.kill('SIGKILL');
    await server?.stop();
  }
});
