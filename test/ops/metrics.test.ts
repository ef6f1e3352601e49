/**
 * Acceptance (issue 6, item 4): GET /metrics of the server and of the agent parses as Prometheus text,
 * and the named series move as data flows and snapshots are taken.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { serveAgentEndpoint } from '../../agent/agent-endpoint';
import { assembleServer } from '../../backup-server/assemble';
import { parseConfig } from '../../shared/config/load';
import { resolveServerConfig, serverConfigSchema } from '../../shared/config/server-config';
import { freePort } from '../harness/cluster';
import { createDatabase, dropDatabase, query, sharedClusters, uniqueName, waitFor } from '../harness/db';
import {
  agentConfigFor,
  memoryLogger,
  serverConfigFor,
  startAgentInProcess,
  tempDir,
} from '../support/pgferry';

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses the Prometheus text format strictly: every sample belongs to a family with HELP and TYPE. */
function parsePrometheus(text: string): Sample[] {
  const typed = new Map<string, string>();
  const helped = new Set<string>();
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const meta = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
    if (meta) {
      if (meta[1] === 'TYPE') {
        expect(['counter', 'gauge', 'histogram', 'summary', 'untyped']).toContain(meta[3]);
        typed.set(meta[2], meta[3]);
      } else helped.add(meta[2]);
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: -?\d+)?$/.exec(line);
    if (!m) throw new Error(`not a Prometheus sample line: ${line}`);
    const labels: Record<string, string> = {};
    const body = m[2] ?? '';
    const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?/g;
    let consumed = 0;
    for (let l = re.exec(body); l; l = re.exec(body)) {
      labels[l[1]] = l[2];
      consumed += l[0].length;
    }
    if (consumed !== body.length) throw new Error(`bad labels in: ${line}`);
    // Prometheus reads values with Go's ParseFloat: NaN and Inf in any case
    const v = m[3].toLowerCase();
    const value =
      v === 'nan'
        ? Number.NaN
        : /^[+-]?inf$/.test(v)
          ? Number(m[3].replace(/inf/i, 'Infinity'))
          : Number(m[3]);
    if (Number.isNaN(value) && v !== 'nan') throw new Error(`bad value in: ${line}`);
    const family = [...typed.keys()].find(
      (f) => m[1] === f || new RegExp(`^${f}_(bucket|sum|count)$`).test(m[1]),
    );
    if (!family || !helped.has(family)) throw new Error(`sample without HELP/TYPE: ${line}`);
    samples.push({ name: m[1], labels, value });
  }
  return samples;
}

async function scrape(port: number): Promise<Sample[]> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return parsePrometheus(await res.text());
}

function value(samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  return samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    ?.value;
}

const { primary, backup } = sharedClusters();
const source = { name: 'metered', password: 'pw-metered', database: uniqueName('src_metered') };

afterAll(async () => {
  await dropDatabase(primary, source.database);
  await dropDatabase(backup, 'pgferry_metered');
});

it('exports metrics that parse as Prometheus text and move as rows are applied and snapshots taken', async () => {
  const url = await createDatabase(primary, source.database);
  await query(url, 'CREATE TABLE t (id serial PRIMARY KEY, v text)');
  const dir = tempDir('metrics');
  fs.mkdirSync(path.join(dir, 'snapshots'));
  const httpPort = await freePort();
  const raw = await serverConfigFor(backup, [source], dir, {
    snapshots: { dir: path.join(dir, 'snapshots'), enabled: true, schedule: '0 0 1 1 *' },
    http: { enabled: true, host: '127.0.0.1', port: httpPort },
  });
  const config = resolveServerConfig(parseConfig(serverConfigSchema, raw));
  const { server, snapshots } = assembleServer(config, memoryLogger().log);
  await server.start();
  const agentLog = memoryLogger().log;
  const agentCfg = agentConfigFor(primary, source, server.port, { heartbeat: { intervalSeconds: 0.5 } });
  const agent = startAgentInProcess(agentCfg, agentLog);
  const agentPort = await freePort();
  const agentEndpoint = await serveAgentEndpoint(agent, {
    enabled: true,
    host: '127.0.0.1',
    port: agentPort,
  });
  const src = { source: 'metered' };
  try {
    await waitFor('the source to be LIVE', async () => {
      const m = await scrape(httpPort);
      return value(m, 'pgferry_source_state', { ...src, state: 'LIVE' }) === 1;
    });
    await waitFor('the agent to stream with its slot checked', async () => {
      const m = await scrape(agentPort);
      return (
        value(m, 'pgferry_agent_phase', { ...src, phase: 'streaming' }) === 1 &&
        value(m, 'pgferry_agent_slot_exists', src) === 1
      );
    });
    const before = await scrape(httpPort);
    const agentBefore = await scrape(agentPort);
    expect(value(before, 'pgferry_source_connected', src)).toBe(1);
    expect(value(before, 'pgferry_source_state', { ...src, state: 'DEAD' })).toBe(0);
    expect(value(before, 'pgferry_snapshots', src)).toBe(0);
    expect(value(before, 'pgferry_disk_free_bytes')).toBeGreaterThan(0);
    expect(value(before, 'pgferry_info', { role: 'server' })).toBe(1);
    expect(value(agentBefore, 'pgferry_agent_connected', src)).toBe(1);
    expect(value(agentBefore, 'pgferry_agent_slot_exists', src)).toBe(1);
    expect(value(agentBefore, 'pgferry_agent_retained_wal_bytes', src)).toEqual(expect.any(Number));
    const rows0 = value(before, 'pgferry_source_rows_applied_total', src) ?? 0;
    const tx0 = value(before, 'pgferry_source_transactions_applied_total', src) ?? 0;
    const lsn0 = value(before, 'pgferry_source_applied_lsn', src) ?? 0;
    const confirmed0 = value(agentBefore, 'pgferry_agent_confirmed_lsn', src) ?? 0;

    for (let i = 0; i < 10; i++)
      await query(url, "INSERT INTO t (v) SELECT 'r' || g FROM generate_series(1, 50) g");
    await waitFor('the applied series to move', async () => {
      const m = await scrape(httpPort);
      return (
        (value(m, 'pgferry_source_rows_applied_total', src) ?? 0) >= rows0 + 500 &&
        (value(m, 'pgferry_source_transactions_applied_total', src) ?? 0) >= tx0 + 10 &&
        (value(m, 'pgferry_source_applied_lsn', src) ?? 0) > lsn0
      );
    });
    await waitFor(
      'the agent to see its confirmed LSN move',
      async () => (value(await scrape(agentPort), 'pgferry_agent_confirmed_lsn', src) ?? 0) > confirmed0,
    );
    const moved = await scrape(httpPort);
    expect(value(moved, 'pgferry_source_lag_bytes', src)).toEqual(expect.any(Number));
    expect(value(moved, 'pgferry_source_last_applied_timestamp_seconds', src)).toBeGreaterThan(
      Date.now() / 1000 - 60,
    );

    expect((await snapshots.createSnapshot('metered')).record.status).toBe('ok');
    const after = await scrape(httpPort);
    expect(value(after, 'pgferry_snapshots', src)).toBe(1);
    expect(value(after, 'pgferry_snapshot_bytes', src)).toBeGreaterThan(0);
    expect(value(after, 'pgferry_snapshot_newest_age_seconds', src)).toBeLessThan(60);
    expect(value(after, 'pgferry_snapshot_runs', { ...src, status: 'ok' })).toBe(1);
    expect(value(after, 'pgferry_snapshot_last_run_success', src)).toBe(1);
    expect(value(after, 'pgferry_snapshot_late', src)).toBe(0);
    expect(value(after, 'pgferry_snapshot_next_run_timestamp_seconds', src)).toBeGreaterThan(
      Date.now() / 1000,
    );
  } finally {
    await agentEndpoint.close();
    await agent.stop();
    await server.stop();
  }
});
