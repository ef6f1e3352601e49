/**
 * `pgferry demo`, step by step: throwaway clusters (primary, backup side, a fresh "new install"), a
 * server in this process, the agent and the recovery as real `pgferry` child processes, a write load, a
 * snapshot, the FTP catalog, a recovery, and the comparison that proves the copy. `cleanup()` undoes
 * everything whatever state the run is in.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Client as FtpClient } from 'basic-ftp';
import { Client } from 'pg';
import YAML from 'yaml';
import { hashPassword } from '../../shared/auth/password';
import { loadServerConfig } from '../../shared/config/server-config';
import { createLogger } from '../../shared/log';
import { RecentLog } from '../../shared/recent-log';
import { serverAttention } from '../../shared/status/attention';
import { renderServerStatus } from '../../shared/status/render';
import { formatBytes } from '../../shared/units';
import { Cluster, freePort, PG_BIN_DIR } from '../../test/harness/cluster';
import { type AssembledServer, assembleServer } from '../assemble';
import { PgferryChild } from './child';
import { Commentary } from './commentary';
import { compareDatabases } from './compare';
import { createDemoSchema, WriteLoad } from './workload';

export interface DemoOptions {
  /** how long the write load runs while replication streams */
  loadSeconds: number;
  /** keep the demo folder (configs, logs, snapshots) */
  keep: boolean;
}

const SOURCE = 'monitoring';

async function scalar(url: string, sql: string): Promise<string> {
  const c = new Client({ connectionString: url });
  c.on('error', () => undefined); // a lost connection rejects the query; never crash the demo
  await c.connect();
  try {
    return String(Object.values((await c.query(sql)).rows[0] ?? {})[0]);
  } finally {
    await c.end();
  }
}

/** A JSON log line of a child as "message" ("warning: message" for warnings); other lines as they are. */
function readableLine(line: string): string {
  if (!line.startsWith('{')) return line;
  try {
    const e = JSON.parse(line) as { level?: string; message?: string };
    const level = e.level === 'warn' ? 'warning: ' : e.level === 'error' ? 'error: ' : '';
    return `${level}${e.message ?? line}`;
  } catch {
    return line;
  }
}

async function until(
  what: string,
  check: () => Promise<boolean> | boolean,
  timeoutMs: number,
  stop: () => boolean = () => false,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (stop()) throw new Error('interrupted');
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what} after ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export class Demo {
  readonly dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgferry-demo-'));
  private readonly c = new Commentary(process.stdout, 10);
  private clusters: Cluster[] = [];
  private creatingClusters: Promise<unknown> = Promise.resolve();
  private assembled: AssembledServer | null = null;
  private agent: PgferryChild | null = null;
  private recovery: PgferryChild | null = null;
  private load: WriteLoad | null = null;
  /** set by Ctrl-C: the run stops at the next step or wait */
  interrupted = false;
  private readonly agentPassword = `agent-${Math.random().toString(36).slice(2)}`;
  private readonly ftpPassword = `ftp-${Math.random().toString(36).slice(2)}`;

  constructor(private readonly opts: DemoOptions) {}

  get elapsedSeconds(): number {
    return this.c.seconds;
  }

  /** Runs every step; true when the restored database equals the primary. */
  async run(): Promise<boolean> {
    const c = this.c;
    c.plain(`pgferry demo: the whole system on this machine, in ${this.dir} (Ctrl-C stops and cleans up)`);

    this.step(1, 'Starting three throwaway PostgreSQL clusters (initdb + pg_ctl, wal_level=logical)');
    // each cluster is remembered as soon as it exists, so that Ctrl-C during creation still removes it
    const creations = ['primary', 'backup', 'new-install'].map((name) =>
      Cluster.create({ name: `demo-${name}` }).then((cl) => {
        this.clusters.push(cl);
        return cl;
      }),
    );
    this.creatingClusters = Promise.allSettled(creations);
    const [primary, backup, fresh] = await Promise.all(creations);
    c.say(`primary      127.0.0.1:${primary.port}  the busy host whose database is protected`);
    c.say(
      `backup       127.0.0.1:${backup.port}  the backup server's PostgreSQL (one replica database per source)`,
    );
    c.say(`new-install  127.0.0.1:${fresh.port}  an empty installation, as after losing the primary host`);

    this.step(2, `Creating the "${SOURCE}" database on the primary: hosts, samples, alerts`);
    await scalar(primary.url(), `CREATE DATABASE ${SOURCE}`);
    const sourceUrl = primary.url(SOURCE);
    await createDemoSchema(sourceUrl);
    c.say(
      `${await scalar(sourceUrl, 'SELECT (SELECT count(*) FROM hosts) + (SELECT count(*) FROM samples) + (SELECT count(*) FROM alerts)')} rows in 3 tables`,
    );

    this.step(3, 'Starting the backup server (in this process)');
    const server = await this.startServer(backup);
    const cfg = server.server.config;
    c.say(
      `agent link   127.0.0.1:${server.server.port}, TLS with a self-signed certificate, fingerprint ${server.server.tls?.fingerprint.slice(0, 23)}…`,
    );
    c.say(
      `FTP          127.0.0.1:${server.ftp?.port} (read-only, user backup), snapshots in ${cfg.snapshots.dir}`,
    );
    c.say(`status       http://127.0.0.1:${server.httpPort()}/status and /metrics`);

    this.step(4, 'Starting the agent beside the primary (a real `pgferry agent` process)');
    const agentYaml = await this.writeAgentConfig(primary, server);
    c.say(`$ pgferry agent --config ${agentYaml}`);
    this.agent = new PgferryChild(['agent', '--config', agentYaml]);
    const status = () => server.server.sourceStatus()[0];
    await until(
      'the agent to stream changes',
      () => status().phase === 'streaming' || !this.agent?.running,
      60_000,
      () => this.interrupted,
    );
    if (status().phase !== 'streaming')
      throw new Error(`the agent stopped:\n${this.agent.output().slice(-2000)}`);
    c.say(`initial copy done: the replica is at LSN ${status().appliedLsn}; now streaming every commit`);

    this.step(
      5,
      `Writing to the primary for ${this.opts.loadSeconds} s while changes stream to the backup server`,
    );
    this.load = new WriteLoad(sourceUrl);
    await this.load.start();
    for (let s = 1; s <= this.opts.loadSeconds && !this.interrupted; s++) {
      await new Promise((r) => setTimeout(r, 1000));
      const st = status();
      const wal = await scalar(sourceUrl, 'SELECT pg_current_wal_lsn()');
      c.say(
        `+${s} s  ${this.load.transactions} transactions written; primary at ${wal}, replica applied ${st.appliedLsn} (${st.transactionsApplied} transactions, ${st.rowsApplied} rows so far)`,
      );
    }
    await this.load.stop();
    const stoppedAt = Date.now();
    const replicaUrl = cfg.sourceSettings[0].replicaUrl;
    await until(
      'the replica to catch up',
      async () => (await compareDatabases(sourceUrl, replicaUrl)).tables.every((t) => t.same),
      60_000,
      () => this.interrupted,
    );
    c.say(
      `writes stopped after ${this.load.transactions} transactions; the replica equals the primary ${((Date.now() - stoppedAt) / 1000).toFixed(1)} s later`,
    );

    this.step(6, 'Taking a snapshot of the replica (the code path the schedule uses)');
    const outcome = await server.snapshots.createSnapshot(SOURCE);
    const r = outcome.record;
    if (r.status !== 'ok') throw new Error(`the snapshot ${r.status}: ${r.error}`);
    c.say(
      `snapshot ${SOURCE}/${r.id}: ${r.tablesWritten + r.tablesLinked} tables, ${formatBytes(r.totalBytes)}, consistent at LSN ${r.lsn}, every file checksummed and verified, ${(r.durationMs / 1000).toFixed(1)} s`,
    );

    this.step(7, 'What the FTP server offers (basic-ftp, logged in as backup)');
    await this.listFtp(server.ftp?.port ?? 0, r.id ?? '');

    this.step(
      8,
      'Recovering the newest snapshot into the empty installation (a real `pgferry recover` process)',
    );
    const target = fresh.url(SOURCE);
    const args = [
      'recover',
      '--host',
      '127.0.0.1',
      '--port',
      String(server.ftp?.port),
      '--source',
      SOURCE,
      '--latest',
      '--target',
      target,
      '--work-dir',
      path.join(this.dir, 'recovery'),
    ];
    c.say(`$ PGFERRY_FTP_PASSWORD=… pgferry ${args.join(' ')}`);
    this.recovery = new PgferryChild(args, { PGFERRY_FTP_PASSWORD: this.ftpPassword }, (line) =>
      c.say(`  ${readableLine(line)}`),
    );
    const code = await this.recovery.exited;
    if (code !== 0) throw new Error(`pgferry recover exited with ${code}`);

    this.step(9, 'Comparing the primary with the restored database, table by table');
    const cmp = await compareDatabases(sourceUrl, target);
    for (const t of cmp.tables)
      c.say(
        `${t.table.padEnd(16)} ${String(t.rows[0]).padStart(7)} rows  md5 ${t.md5[0].slice(0, 12)}  ${t.same ? '=' : '≠'}  ${String(t.rows[1]).padStart(7)} rows  md5 ${t.md5[1].slice(0, 12)}  ${t.same ? 'identical' : 'DIFFERENT'}`,
      );
    for (const s of cmp.sequences)
      c.say(
        `${s.sequence.padEnd(24)} primary ${s.values[0] ?? '-'}, restored ${s.values[1] ?? '-'}  ${s.safe ? 'ok' : 'BEHIND'}`,
      );
    const id = await scalar(
      target,
      "INSERT INTO samples (host_id, metric, value) VALUES (1, 'cpu', 1) RETURNING id",
    );
    c.say(
      `a new row inserted into the restored database got id ${id}: the restored system can write at once`,
    );
    const rows = cmp.tables.reduce((n, t) => n + t.rows[0], 0);
    c.plain(
      cmp.identical
        ? `\nRESULT: the restored database is identical to the primary (${cmp.tables.length} tables, ${rows} rows, per-table md5 equal)`
        : '\nRESULT: the restored database DIFFERS from the primary (see above)',
    );

    this.step(10, 'The daily check (`pgferry status` on the backup server), then stopping');
    const st = await server.status();
    c.say(renderServerStatus(st, serverAttention(st)).trimEnd());
    return cmp.identical;
  }

  private step(n: number, text: string): void {
    if (this.interrupted) throw new Error('interrupted');
    this.c.step(n, text);
  }

  private async startServer(backup: Cluster): Promise<AssembledServer> {
    const snapshotsDir = path.join(this.dir, 'snapshots');
    fs.mkdirSync(snapshotsDir, { recursive: true });
    const pasv = 40000 + Math.floor(Math.random() * 2000) * 10;
    const yaml = {
      listen: { host: '127.0.0.1', port: await freePort() },
      tls: 'auto',
      stateDir: path.join(this.dir, 'state'),
      replica: { url: backup.url('postgres') },
      sources: [{ name: SOURCE, passwordHash: hashPassword(this.agentPassword) }],
      snapshots: { dir: snapshotsDir, schedule: '0 3 * * *', pgBinDir: PG_BIN_DIR },
      ftp: {
        host: '127.0.0.1',
        port: await freePort(),
        passivePorts: `${pasv}-${pasv + 9}`,
        passwordHash: hashPassword(this.ftpPassword),
      },
      heartbeat: { deadAfterSeconds: 5 },
      http: { host: '127.0.0.1', port: await freePort() },
      log: { level: 'info', format: 'json', file: path.join(this.dir, 'logs', 'server.log') },
    };
    const file = path.join(this.dir, 'server.yaml');
    fs.writeFileSync(file, YAML.stringify(yaml));
    const config = loadServerConfig(file);
    const recentLog = new RecentLog();
    const log = createLogger({ ...config.log, defaultMeta: { role: 'server' }, sink: recentLog.add });
    const assembled = assembleServer(config, log, { recentLog });
    assembled.server.states.onTransition((e) =>
      this.c.event(`source ${e.source} is ${e.to} (${e.reason}); the hooks would run now`),
    );
    this.assembled = assembled;
    await assembled.server.start();
    return assembled;
  }

  private async writeAgentConfig(primary: Cluster, server: AssembledServer): Promise<string> {
    const yaml = {
      source: { name: SOURCE, url: primary.url(SOURCE) },
      server: {
        host: '127.0.0.1',
        port: server.server.port,
        password: this.agentPassword,
        tls: { fingerprint: server.server.tls?.fingerprint },
      },
      heartbeat: { intervalSeconds: 1 },
      sequences: { intervalSeconds: 1 },
      walCheckIntervalSeconds: 1,
      initialSync: { pgBinDir: PG_BIN_DIR },
      http: { host: '127.0.0.1', port: await freePort() },
      log: { level: 'info', format: 'json', file: path.join(this.dir, 'logs', 'agent.log') },
    };
    const file = path.join(this.dir, 'agent.yaml');
    fs.writeFileSync(file, YAML.stringify(yaml), { mode: 0o600 });
    return file;
  }

  private async listFtp(port: number, id: string): Promise<void> {
    const ftp = new FtpClient(10_000);
    try {
      await ftp.access({ host: '127.0.0.1', port, user: 'backup', password: this.ftpPassword });
      for (const dir of ['/', `/${SOURCE}`, `/${SOURCE}/${id}`]) {
        this.c.say(`${dir}`);
        for (const e of await ftp.list(dir))
          this.c.say(
            `  ${e.isDirectory ? `${e.name}/` : e.name.padEnd(40)} ${e.isDirectory ? '' : formatBytes(e.size)}`,
          );
      }
    } finally {
      ftp.close();
    }
  }

  /** The last lines of the server's and the agent's logs (shown when the demo fails). */
  logTails(lines = 12): string {
    return ['server.log', 'agent.log']
      .map((f) => {
        const file = path.join(this.dir, 'logs', f);
        const text = fs.existsSync(file)
          ? fs.readFileSync(file, 'utf8').trim().split('\n').slice(-lines).join('\n')
          : '(none)';
        return `--- ${f}\n${text}`;
      })
      .join('\n');
  }

  /** Stops and removes everything; safe to call at any point, once. */
  async cleanup(): Promise<void> {
    const c = this.c;
    await this.load?.stop().catch(() => undefined);
    await this.recovery?.stop(2000);
    if (this.agent?.running) {
      const closed = this.assembled
        ? until('CLOSE', () => this.assembled?.server.states.view(SOURCE)?.state === 'CLOSE', 5000).catch(
            () => undefined,
          )
        : Promise.resolve();
      await this.agent.stop();
      await closed;
    }
    await this.assembled?.server.stop().catch((e: unknown) => c.say(`stopping the server: ${String(e)}`));
    await this.creatingClusters;
    await Promise.all(this.clusters.map((cl) => cl.destroy().catch(() => undefined)));
    this.clusters = [];
    if (!this.opts.keep) fs.rmSync(this.dir, { recursive: true, force: true });
    c.event(
      `stopped the agent, the server and the clusters; ${this.opts.keep ? `kept ${this.dir}` : `removed ${this.dir}`}`,
    );
  }

  /** For the process 'exit' handler: kill the children without waiting. */
  killChildrenNow(): void {
    this.agent?.killNow();
    this.recovery?.killNow();
  }
}
