/**
 * A clean stop is never lost: when the server is still busy with frames the agent sent before its CLOSE
 * (here: the replica holds a lock the applier waits for), the CLOSE still counts as soon as it arrives,
 * no false DEAD is raised meanwhile, and the queued frames are still applied after the agent has gone.
 */
import { Client } from 'pg';
import { query, waitFor } from '../harness/db';
import { type Pair, startPair } from '../support/pair';

let pair: Pair;

beforeAll(async () => {
  pair = await startPair({
    name: 'slowclose',
    seed: (url) => query(url, 'CREATE TABLE t (id serial PRIMARY KEY); INSERT INTO t DEFAULT VALUES'),
    serverExtra: { heartbeat: { deadAfterSeconds: 2 } },
    agentExtra: { heartbeat: { intervalSeconds: 0.5 } },
  });
});

afterAll(async () => {
  await pair?.stop();
});

it('records CLOSE (and no DEAD) for an agent that stops while the server is blocked', async () => {
  const { server, agent, replicaUrl } = pair;
  await waitFor('LIVE', () => server.states.view('slowclose')?.state === 'LIVE');
  await waitFor(
    'sequences reported',
    async () =>
      (await query<{ n: number }>(replicaUrl, 'SELECT count(*)::int AS n FROM pgferry.sequences'))[0].n > 0,
  );
  const lastReport = async () =>
    (await query<{ at: string }>(replicaUrl, 'SELECT max(reported_at)::text AS at FROM pgferry.sequences'))[0]
      .at;
  const before = await lastReport();
  const locker = new Client({ connectionString: replicaUrl });
  await locker.connect();
  try {
    await locker.query('BEGIN');
    await locker.query('LOCK TABLE pgferry.sequences IN ACCESS EXCLUSIVE MODE');
    await agent.stop(); // sends its sequences (blocked on the server) and then CLOSE
    await waitFor(
      'CLOSE while the server is still blocked',
      () => server.states.view('slowclose')?.state === 'CLOSE',
      10_000,
    );
    // longer than deadAfterSeconds: a CLOSEd source must not turn DEAD
    await new Promise((r) => setTimeout(r, 2500));
  } finally {
    await locker.query('ROLLBACK');
    await locker.end();
  }
  const transitions = server.states.view('slowclose')?.transitions.map((t) => t.to) ?? [];
  expect(transitions).toContain('CLOSE');
  expect(transitions).not.toContain('DEAD');
  await waitFor(
    'the queued sequences applied after the agent left',
    async () => (await lastReport()) > before,
  );
});
