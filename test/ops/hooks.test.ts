/**
 * Acceptance (issue 6, item 2): webhook and email hooks reach a local HTTP server and a local SMTP server;
 * a hook that fails or hangs is retried a bounded number of times, logged, and never stops replication.
 */
import { commandHook } from '../../backup-server/hooks/command-hook';
import { HookDispatcher } from '../../backup-server/hooks/hook-dispatcher';
import type { HookPayload } from '../../backup-server/hooks/hook-event';
import { formatMessage } from '../../backup-server/hooks/smtp-client';
import { webhookHook } from '../../backup-server/hooks/webhook-hook';
import { emailHook } from '../../backup-server/hooks/email-hook';
import { createDatabase, dropDatabase, query, sharedClusters, uniqueName, waitFor } from '../harness/db';
import { waitUntilEqual } from '../support/compare';
import { smtpReceiver, webhookReceiver } from '../support/hook-receivers';
import {
  agentConfigFor,
  memoryLogger,
  serverConfigFor,
  startAgentInProcess,
  startServerInProcess,
  tempDir,
} from '../support/pgferry';

const payload = (state: string): HookPayload => ({
  state,
  previousState: 'LIVE',
  source: 'unit',
  time: new Date().toISOString(),
  appliedLsn: '0/16B3748',
  reason: 'test',
  server: 'test-host',
});

describe('hook delivery', () => {
  it('retries a failing webhook, mails through SMTP, and kills a hanging command after its timeout', async () => {
    const web = await webhookReceiver(1);
    const smtp = await smtpReceiver();
    const { log, entries } = memoryLogger();
    const hooks = new HookDispatcher(
      [
        webhookHook(web.url),
        emailHook({
          smtpHost: '127.0.0.1',
          smtpPort: smtp.port,
          from: 'pgferry@test',
          to: ['ops@test', 'b@test'],
        }),
        commandHook('sleep 30'),
      ],
      { timeoutSeconds: 0.3, retries: 1, retryDelaySeconds: 0.05 },
      log,
    );
    const t0 = Date.now();
    hooks.dispatch(payload('DEAD'));
    hooks.dispatch(payload('LIVE'));
    await hooks.idle();
    // two transitions, two attempts each of 0.3 s for the hanging command, plus the delays
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(web.items.map((p) => p.state)).toEqual(['DEAD', 'LIVE']);
    expect(web.requests).toBe(3);
    expect(web.items[0]).toMatchObject({ source: 'unit', appliedLsn: '0/16B3748', previousState: 'LIVE' });
    expect(smtp.items).toHaveLength(2);
    expect(smtp.items[0]).toMatchObject({ from: 'pgferry@test', to: ['ops@test', 'b@test'] });
    expect(smtp.items[0].data).toMatch(/^Subject: pgferry: source unit is DEAD \(was LIVE\)$/m);
    expect(smtp.items[0].data).toMatch(/"appliedLsn": "0\/16B3748"/);
    const stats = Object.fromEntries(hooks.stats().map((s) => [s.kind, s]));
    expect(stats.webhook).toMatchObject({ succeeded: 2, failed: 0, failedAttempts: 1 });
    expect(stats.email).toMatchObject({ succeeded: 2, failed: 0 });
    expect(stats.command).toMatchObject({ succeeded: 0, failed: 2, failedAttempts: 4 });
    expect(stats.command.lastError).toMatch(/HOOK_FAILED: command "sleep 30" was stopped/);
    expect(entries.filter((e) => e.level === 'error' && e.hook === 'command')).toHaveLength(2);
    expect(entries.filter((e) => e.level === 'warn' && e.hook === 'webhook')).toHaveLength(1);
    await hooks.stop();
    await Promise.all([web.close(), smtp.close()]);
  });

  it('gives a command the transition in its environment and as JSON on stdin', async () => {
    const dir = tempDir('cmdhook');
    const out = `${dir}/out`;
    const { log } = memoryLogger();
    const hooks = new HookDispatcher(
      [commandHook(['/bin/sh', '-c', `cat > ${out}.json; env | grep ^PGFERRY_ | sort > ${out}.env`])],
      { timeoutSeconds: 5, retries: 0, retryDelaySeconds: 0 },
      log,
    );
    hooks.dispatch(payload('CLOSE'));
    await hooks.idle();
    const fs = await import('node:fs');
    expect(JSON.parse(fs.readFileSync(`${out}.json`, 'utf8'))).toMatchObject({
      state: 'CLOSE',
      source: 'unit',
    });
    const env = fs.readFileSync(`${out}.env`, 'utf8');
    for (const line of ['PGFERRY_STATE=CLOSE', 'PGFERRY_SOURCE=unit', 'PGFERRY_APPLIED_LSN=0/16B3748'])
      expect(env).toContain(line);
    expect(env).toMatch(/^PGFERRY_TIME=\d{4}-\d\d-\d\dT/m);
    await hooks.stop();
  });

  it('reports an SMTP refusal with the server answer, and dot-stuffs the body', async () => {
    const { log } = memoryLogger();
    const hooks = new HookDispatcher(
      [emailHook({ smtpHost: '127.0.0.1', smtpPort: 1, from: 'pgferry@test', to: ['ops@test'] })],
      { timeoutSeconds: 2, retries: 0, retryDelaySeconds: 0 },
      log,
    );
    hooks.dispatch(payload('DEAD'));
    await hooks.idle();
    expect(hooks.stats()[0].lastError).toMatch(/SMTP 127\.0\.0\.1:1: .*ECONNREFUSED/);
    await hooks.stop();
    const text = formatMessage({ from: 'a@b', to: ['c@d'], subject: 'x', text: '.hidden\nline' });
    expect(text).toMatch(/\r\n\.\.hidden\r\nline\r\n\.\r\n$/);
  });
});

const { primary, backup } = sharedClusters();
const source = { name: 'hooked', password: 'pw-hooked', database: uniqueName('src_hooked') };

afterAll(async () => {
  await dropDatabase(primary, source.database);
  await dropDatabase(backup, 'pgferry_hooked');
});

it('delivers LIVE and CLOSE to the webhook and by mail while a failing command hook never stops replication', async () => {
  const url = await createDatabase(primary, source.database);
  await query(url, 'CREATE TABLE t (id int PRIMARY KEY, v text)');
  const web = await webhookReceiver();
  const smtp = await smtpReceiver();
  const dir = tempDir('hooks');
  const { log, entries } = memoryLogger();
  const cfg = await serverConfigFor(backup, [source], dir, {
    heartbeat: { deadAfterSeconds: 2 },
    hooks: {
      command: 'echo "hook broken" >&2; exit 3',
      webhookUrl: web.url,
      email: { smtpHost: '127.0.0.1', smtpPort: smtp.port, from: 'pgferry@backup.test', to: ['ops@test'] },
      timeoutSeconds: 2,
      retries: 2,
      retryDelaySeconds: 0.2,
    },
  });
  const server = await startServerInProcess(cfg, log);
  const agent = startAgentInProcess(
    agentConfigFor(primary, source, server.port, { heartbeat: { intervalSeconds: 0.5 } }),
    memoryLogger().log,
  );
  try {
    await waitFor('the webhook to hear LIVE', () => web.items.some((p) => p.state === 'LIVE'), 30_000);
    // the command hook is failing and retrying now; replication goes on
    for (let i = 0; i < 20; i++) await query(url, 'INSERT INTO t VALUES ($1, $2)', [i, `row ${i}`]);
    await waitUntilEqual(url, server.config.sourceSettings[0].replicaUrl);
    await waitFor('the command hook to be given up', () =>
      entries.some((e) => e.level === 'error' && e.hook === 'command'),
    );
    const failures = entries.filter((e) => e.hook === 'command' && /hook failed/.test(e.message));
    expect(failures).toHaveLength(3);
    expect(String(failures[2].error)).toMatch(/exited with 3: hook broken/);
    await waitFor('a mail about LIVE', () => smtp.items.some((m) => /is LIVE/.test(m.data)));
    expect(web.items[0]).toMatchObject({ state: 'LIVE', previousState: 'UNKNOWN', source: 'hooked' });

    await agent.stop();
    await waitFor('the webhook to hear CLOSE', () => web.items.some((p) => p.state === 'CLOSE'));
    await waitFor('a mail about CLOSE', () => smtp.items.some((m) => /Subject: .*is CLOSE/.test(m.data)));
    const close = web.items.find((p) => p.state === 'CLOSE');
    expect(close?.appliedLsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
    expect(smtp.items[0].to).toEqual(['ops@test']);
  } finally {
    await agent.stop();
    await server.stop();
    await Promise.all([web.close(), smtp.close()]);
  }
});
