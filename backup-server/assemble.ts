/**
 * Builds the whole backup server from its config: replication (listener + replicators), the snapshot
 * service (schedule, rotation; fresh sequences asked of the agents) and the read-only FTP server.
 */
import type { ServerConfig } from '../shared/config/server-config';
import { PgferryError } from '../shared/errors';
import type { Logger } from '../shared/log';
import { SnapshotFtpServer } from './ftp';
import { BackupServer } from './server';
import { SnapshotService } from './snapshot/snapshot-service';
import { type StatusEndpoint, serveStatus } from '../shared/status-http';

export interface AssembledServer {
  server: BackupServer;
  snapshots: SnapshotService;
  ftp: SnapshotFtpServer | null;
}

export function assembleServer(config: ServerConfig, log: Logger): AssembledServer {
  const server = new BackupServer(config, log);
  const snapshots = new SnapshotService({
    config,
    logger: log.child({ part: 'snapshots' }),
    refreshSequences: async (source) => {
      const ok = await server.replicators.get(source)?.refreshSequences();
      if (!ok)
        throw new PgferryError(
          'CONNECTION_LOST',
          `the agent of ${source} did not answer; using the latest known sequence values`,
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
  if (config.http.enabled) {
    let endpoint: StatusEndpoint | null = null;
    server.addPart({
      name: 'http',
      start: async () => {
        endpoint = await serveStatus(config.http.host, config.http.port, async () => ({
          sources: server.sourceStatus(),
          ftpDefaultPassword: config.ftp.enabled && config.ftpDefaultPassword,
          snapshots: await snapshots.list().catch(() => []),
        }));
      },
      stop: async () => endpoint?.close(),
    });
  }
  return { server, snapshots, ftp };
}
