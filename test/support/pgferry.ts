/**
 * Running pgferry in tests: configs for a server and agents against the shared (or private) clusters,
 * started either in-process (fast, inspectable) or as real child processes (for kill -9 and signals).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import YAML from 'yaml';
import { Agent } from '../../agent/agent';
import { BackupServer } from '../../backup-server/server';
import { agentConfigSchema, resolveAgentConfig } from '../../shared/config/agent-config';
import { parseConfig } from '../../shared/config/load';
import { resolveServerConfig, serverConfigSchema } from '../../shared/config/server-config';
import { createLogger, type LogEntry, type Logger } from '../../shared/log';
import type { Cluster } from '../harness/cluster';
import { freePort } from '../harness/cluster';
import { waitFor } from '../harness/db';

export const CLI = path.resolve(__dirname, '../../dist/shared/cli/main.js');

export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `pgferry-${prefix}-`));
}

export interface SourceSpec {
  name: string;
  password: string;
  /** database on the primary cluster */
  database: string;
}

export async function serverConfigFor(
  backup: Cluster,
  sources: SourceSpec[],
  dir: string,
  extra: Record<string, unknown> = {},
): Promise<Record<string, unknown>> {
  return {
    listen: { host: '127.0.0.1', port: await freePort() },
    tls: 'off',
    stateDir: path.join(dir, 'state'),
    replica: { url: backup.url('postgres') },
    sources: sources.map((s) => ({ name: s.name, passwordHash: s.password })),
    snapshots: { dir: path.join(dir, 'snapshots'), enabled: false },
    ftp: { enabled: false },
    http: { enabled: false },
    log: { level: 'debug', format: 'json' },
    ...extra,
  };
}

export function agentConfigFor(
  primary: Cluster,
  source: SourceSpec,
  serverPort: number,
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    source: {
      name: source.name,
      url: primary.url(source.database),
      slot: `pgferry_${source.name.replace(/-/g, '_')}`,
      publication: 'pgferry',
    },
    server: { host: '127.0.0.1', port: serverPort, password: source.password, tls: 'off' },
    heartbeat: { intervalSeconds: 1 },
    sequences: { intervalSeconds: 1 },
    walCheckIntervalSeconds: 1,
    reconnect: { minDelayMs: 100, maxDelayMs: 1000 },
    http: { enabled: false },
    log: { level: 'debug', format: 'json' },
    ...extra,
  };
}

/** A logger that keeps entries in memory, for assertions on what was logged. */
export function memoryLogger(meta: Record<string, unknown> = {}): { log: Logger; entries: LogEntry[] } {
  const entries: LogEntry[] = [];
  const log = createLogger({
    level: 'debug',
    format: 'json',
    file: process.env.PGFERRY_TEST_LOG ?? '/dev/null',
    defaultMeta: meta,
    sink: (e) => entries.push(e),
  });
  return { log, entries };
}

export async function startServerInProcess(raw: Record<string, unknown>, log: Logger): Promise<BackupServer> {
  const server = new BackupServer(resolveServerConfig(parseConfig(serverConfigSchema, raw)), log);
  await server.start();
  return server;
}

export function startAgentInProcess(raw: Record<string, unknown>, log: Logger): Agent {
  const agent = new Agent(resolveAgentConfig(parseConfig(agentConfigSchema, raw)), log);
  agent.start();
  return agent;
}

export interface Proc {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
  kill: (sig?: NodeJS.Signals) => void;
}

export function writeYaml(dir: string, name: string, value: unknown): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, YAML.stringify(value));
  return file;
}

/** Runs `pgferry <args>` from the build as a child process, collecting its output. */
export function spawnCli(args: string[], env: NodeJS.ProcessEnv = {}): Proc {
  if (!fs.existsSync(CLI)) throw new Error(`${CLI} is missing: run "npm run build" first (npm test does)`);
  const child = spawn(process.execPath, [CLI, ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => {
    out += d.toString();
  });
  child.stderr?.on('data', (d: Buffer) => {
    out += d.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, output: () => out, exited, kill: (sig = 'SIGTERM') => child.kill(sig) };
}

/** Waits until `proc` printed a line matching `re`. */
export async function waitForOutput(proc: Proc, re: RegExp, timeoutMs = 30_000): Promise<void> {
  await waitFor(`output matching ${re}`, () => re.test(proc.output()), timeoutMs);
}
