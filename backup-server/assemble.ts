/**
 * Builds the whole backup server from its config: replication (listener + replicators, source states and
 * hooks), the snapshot service (schedule, rotation; fresh sequences asked of the agents), the read-only
 * FTP server, and the loopback HTTP endpoint (/status, /metrics).
 */
import type { ServerConfig } from '../shared/config/server-config';
import { PgferryError } from '../shared/errors';
import type { Logger } from '../shared/log';
import { RecentLog } from '../shared/recent-log';
import type { ServerStatusReport } from '../shared/status/report';
import { type StatusEndpoint, serveStatus } from '../shared/status-http';
import { SnapshotFtpServer } from './ftp';
import { BackupServer } from './server';
import type { DiskProbe } from './snapshot/disk-probe';
import { SnapshotService } from './snapshot/snapshot-service';
import { ServerMetrics } from './status/server-metrics';
import { serverStatus } from './status/server-status';

export interface AssembledServer {
  server: BackupServer;
  snapshots: SnapshotService;
  ftp: SnapshotFtpServer | null;
  metrics: ServerMetrics;
  /** the report GET /status answers */
  status(): Promise<ServerStatusReport>;
  /** the bound HTTP port once started (null when http.enabled is false) */
  httpPort(): number | null;
}

export interface AssembleOptions {
  /** the sink of the process logger (status shows its last 24 h); a fresh one counts nothing */
  recentLog?: RecentLog;
  /** free-space readings (tests) */
  probe?: DiskProbe;
}

export function assembleServer(
  config: ServerConfig,
  log: Logger,
  opts: AssembleOptions = {},
): AssembledServer {
  const startedAt = Date.now();
  const server = new BackupServer(config, log);
  const snapshots = new SnapshotService({
    config,
    logger: log.child({ part: 'snapshots' }),
    probe: opts.probe,
    refreshSequences: async (source) => {
      const r = await server.replicators.get(source)?.refreshBeforeSnapshot();
      if (!r?.fresh) {
        throw new PgferryError(
          'CONNECTION_LOST',
          `the agent of ${source} did not answer; using the latest known sequence values`,
        );
      }
      if (r.schema && !r.schema.equal) {
        throw new PgferryError(
          'SCHEMA_MISMATCH',
          `the replica's schema (hash ${r.schema.replicaHash}) differs from the primary's (hash ${r.schema.primaryHash}) at ${r.schema.atLsn}: this snapshot would not restore the primary's tables`,
        );
      }
      if (!r.schema)
        throw new Error(
          'the schema comparison did not complete in time; the snapshot records an unverified schema',
        );
    },
  });
  server.addPart(snapshots);
  let ftp: SnapshotFtpServer | null = null;
  if (config.ftp.enabled) {
    const f = SnapshotFtpServer.fromConfig(config, log.child({ part: 'ftp' }));
    ftp = f;
    server.addPart({ name: 'ftp', start: () => f.start(), stop: () => f.stop() });
  }
  const recentLog = opts.recentLog ?? new RecentLog();
  const metrics = new ServerMetrics();
  const status = () =>
    serverStatus({
      config,
      server,
      snapshots,
      recentLog,
      startedAt,
      probe: opts.probe,
      ftpPort: () => ftp?.port ?? config.ftp.port,
    });
  let endpoint: StatusEndpoint | null = null;
  if (config.http.enabled) {
    server.addPart({
      name: 'http',
      start: async () => {
        endpoint = await serveStatus(config.http.host, config.http.port, status, async () => {
          metrics.update(await status());
          return metrics.text();
        });
        log.info('status endpoint listening', { url: `http://${config.http.host}:${endpoint.port}/status` });
      },
      stop: async () => {
        await endpoint?.close();
        endpoint = null;
      },
    });
  }
  return { server, snapshots, ftp, metrics, status, httpPort: () => endpoint?.port ?? null };
}
