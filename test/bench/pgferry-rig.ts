/**
 * pgferry as it runs in production for the benchmark: `pgferry server` and one `pgferry agent` per source,
 * each its own process (the built CLI), product defaults except the test ports, so the resident memory of
 * each role can be read from /proc and a CPU profile taken of either.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Cluster } from '../harness/cluster';
import {
  agentConfigFor,
  type Proc,
  type SourceSpec,
  serverConfigFor,
  waitForOutput,
  writeYaml,
} from '../support/pgferry';
import { sleep } from './bench-env';

export type Role = 'agent' | 'server';

/** the built CLI, from dist/test/bench (test/support's spawnCli resolves it from the TypeScript sources) */
const CLI = path.resolve(__dirname, '../../shared/cli/main.js');

/** deploy/ beside dist/ (the built bench runs from dist/test/bench) */
const DEPLOY = path.resolve(__dirname, '../../../deploy');

/**
 * What the shipped systemd unit of `role` sets for its process: the environment (its `Environment=` lines:
 * NODE_OPTIONS, malloc settings) and the CPU priority (`Nice=`, 0 when unset), so the benchmark measures
 * memory and speed as production runs them.
 */
export function unitSettings(role: Role): { env: Record<string, string>; nice: number } {
  const unit = fs.readFileSync(path.join(DEPLOY, 'systemd', `pgferry-${role}.service`), 'utf8');
  const env: Record<string, string> = {};
  let nice = 0;
  for (const raw of unit.split('\n')) {
    const line = raw.trim();
    const n = /^Nice=(-?\d+)$/.exec(line);
    if (n) nice = Number(n[1]);
    const m = /^Environment=(?:"([^"]*)"|(\S+))\s*$/.exec(line);
    const assignment = m?.[1] ?? m?.[2];
    const eq = assignment?.indexOf('=') ?? -1;
    if (assignment && eq > 0) env[assignment.slice(0, eq)] = assignment.slice(eq + 1);
  }
  return { env, nice };
}

function spawnCli(args: string[], nodeFlags: string[], niceOverride?: number): Proc {
  const role = args[0] as Role;
  const unit = unitSettings(role);
  const child = spawn(process.execPath, [...nodeFlags, CLI, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...unit.env },
  });
  const nice = niceOverride ?? unit.nice;
  if (nice !== 0 && child.pid) os.setPriority(child.pid, nice);
  let out = '';
  const keep = (d: Buffer) => {
    out += d.toString();
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, output: () => out, exited, kill: (sig = 'SIGTERM') => child.kill(sig) };
}

/** Highest resident set seen per role: VmHWM of every process (sampled, and read before each stop). */
export class RssPeaks {
  private readonly peak = new Map<Role, number>();
  private readonly live = new Map<number, Role>();
  private timer: NodeJS.Timeout | null = null;

  watch(role: Role, pid: number): void {
    this.live.set(pid, role);
    this.timer ??= setInterval(() => this.sample(), 250);
    this.timer.unref();
  }

  forget(pid: number): void {
    this.sampleOne(pid);
    this.live.delete(pid);
  }

  sample(): void {
    for (const pid of this.live.keys()) this.sampleOne(pid);
  }

  private sampleOne(pid: number): void {
    const role = this.live.get(pid);
    if (!role) return;
    let status: string;
    try {
      status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    } catch {
      return;
    }
    const m = /^VmHWM:\s+(\d+) kB/m.exec(status);
    if (m) this.peak.set(role, Math.max(this.peak.get(role) ?? 0, Number(m[1]) * 1024));
  }

  bytes(role: Role): number {
    return this.peak.get(role) ?? 0;
  }

  /** "agent 150 MB, server 180 MB": the peaks so far, for the progress log after each part. */
  describe(): string {
    this.sample();
    return (['agent', 'server'] as const)
      .map((r) => `${r} ${(this.bytes(r) / 1e6).toFixed(0)} MB`)
      .join(', ');
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}

export interface RigOptions {
  primary: Cluster;
  replica: Cluster;
  /** source name -> database on the primary */
  sources: { name: string; database: string }[];
  dir: string;
  /** write V8 CPU profiles of the server (and agents) here */
  profileDir?: string;
  /** config settings to try instead of the defaults, e.g. { 'replica.maxGroupDelayMs': 0 } */
  overrides?: Record<Role, Record<string, unknown>>;
  /** CPU priority to try instead of the systemd unit's `Nice=` */
  nice?: Partial<Record<Role, number>>;
}

/** Sets `dotted.path` in a config object (creating objects on the way); returns the object. */
function setPath(obj: Record<string, unknown>, dotted: string, v: unknown): Record<string, unknown> {
  const keys = dotted.split('.');
  let at = obj;
  for (const k of keys.slice(0, -1)) {
    const next = at[k];
    at[k] = typeof next === 'object' && next !== null ? { ...(next as Record<string, unknown>) } : {};
    at = at[k] as Record<string, unknown>;
  }
  at[keys[keys.length - 1]] = v;
  return obj;
}

function withOverrides(cfg: Record<string, unknown>, o: Record<string, unknown> | undefined) {
  for (const [k, v] of Object.entries(o ?? {})) setPath(cfg, k, v);
  return cfg;
}

const LOG = { level: 'info', format: 'json' };

export class PgferryRig {
  readonly rss = new RssPeaks();
  private server: Proc | null = null;
  private readonly agents = new Map<string, Proc>();
  private readonly specs: SourceSpec[];

  private constructor(
    private readonly o: RigOptions,
    private readonly serverPort: number,
    private readonly serverYaml: string,
  ) {
    this.specs = o.sources.map((s) => ({ name: s.name, password: `pw-${s.name}`, database: s.database }));
  }

  static async start(o: RigOptions): Promise<PgferryRig> {
    fs.mkdirSync(o.dir, { recursive: true });
    const specs = o.sources.map((s) => ({ name: s.name, password: `pw-${s.name}`, database: s.database }));
    const cfg = withOverrides(
      await serverConfigFor(o.replica, specs, o.dir, { log: LOG }),
      o.overrides?.server,
    );
    const port = (cfg.listen as { port: number }).port;
    const rig = new PgferryRig(o, port, writeYaml(o.dir, 'server.yaml', cfg));
    try {
      await rig.startServer();
    } catch (e) {
      const out = rig.logs();
      await rig.stop();
      throw new Error(`pgferry server did not start: ${(e as Error).message}\n${out}`);
    }
    return rig;
  }

  /** The replica database the server keeps for `source`. */
  replicaUrl(source: string): string {
    return this.o.replica.url(`pgferry_${source}`);
  }

  /** node's own flags for a `role` process (--cpu-prof is not allowed in NODE_OPTIONS) */
  private nodeFlags(role: Role): string[] {
    if (!this.o.profileDir) return [];
    const dir = path.join(this.o.profileDir, role);
    fs.mkdirSync(dir, { recursive: true });
    return ['--cpu-prof', `--cpu-prof-dir=${dir}`];
  }

  private async startServer(): Promise<void> {
    const p = spawnCli(
      ['server', '--config', this.serverYaml],
      this.nodeFlags('server'),
      this.o.nice?.server,
    );
    this.server = p;
    if (p.child.pid) this.rss.watch('server', p.child.pid);
    await waitForOutput(p, /listening for agents/, 30_000);
  }

  /** Starts the agent of `source` (product defaults: 5 s heartbeat, 10 s sequences and WAL checks). */
  startAgent(source: string): Proc {
    if (this.agents.has(source)) throw new Error(`the agent of ${source} is already running`);
    const spec = this.specs.find((s) => s.name === source);
    if (!spec) throw new Error(`unknown source ${source}`);
    const cfg = withOverrides(
      agentConfigFor(this.o.primary, spec, this.serverPort, {
        heartbeat: { intervalSeconds: 5 },
        sequences: { intervalSeconds: 10 },
        walCheckIntervalSeconds: 10,
        log: LOG,
      }),
      this.o.overrides?.agent,
    );
    const yaml = writeYaml(this.o.dir, `agent-${source}.yaml`, cfg);
    const p = spawnCli(['agent', '--config', yaml], this.nodeFlags('agent'), this.o.nice?.agent);
    if (p.child.pid) this.rss.watch('agent', p.child.pid);
    this.agents.set(source, p);
    return p;
  }

  /** Resolves when the agent reports that the server applied its initial copy; fails if it exits first. */
  async initialCopyApplied(source: string, timeoutMs: number): Promise<void> {
    const p = this.agents.get(source);
    if (!p) throw new Error(`the agent of ${source} is not running`);
    const exited = p.exited.then((code) => {
      throw new Error(
        `the agent of ${source} exited (${code}) during its initial copy:\n${p.output().slice(-2000)}`,
      );
    });
    exited.catch(() => undefined);
    await Promise.race([waitForOutput(p, /initial copy applied by the backup server/, timeoutMs), exited]);
  }

  async stopAgent(source: string): Promise<void> {
    const p = this.agents.get(source);
    if (!p) return;
    this.agents.delete(source);
    await this.stopProc(p);
  }

  private async stopProc(p: Proc): Promise<void> {
    if (p.child.pid) this.rss.forget(p.child.pid);
    p.kill('SIGTERM');
    const code = await Promise.race([p.exited, sleep(15_000).then(() => 'timeout' as const)]);
    if (code === 'timeout') {
      p.kill('SIGKILL');
      await p.exited;
    }
  }

  /** Process id of the server, or of the running agent of `source`. */
  pid(role: Role, source = ''): number {
    const pid = this.pidOrNull(role, source);
    if (pid === null) throw new Error(`no running ${role} ${source}`);
    return pid;
  }

  pidOrNull(role: Role, source = ''): number | null {
    const p = role === 'server' ? this.server : this.agents.get(source);
    return p?.child.pid ?? null;
  }

  /** Output of the server and the running agents, for a failure message. */
  logs(): string {
    const parts = [`--- server ---\n${this.server?.output().slice(-3000) ?? ''}`];
    for (const [s, p] of this.agents) parts.push(`--- agent ${s} ---\n${p.output().slice(-3000)}`);
    return parts.join('\n');
  }

  async stop(): Promise<void> {
    for (const s of [...this.agents.keys()]) await this.stopAgent(s);
    if (this.server) await this.stopProc(this.server);
    this.server = null;
    this.rss.stop();
  }
}
