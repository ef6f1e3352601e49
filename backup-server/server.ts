/**
 * The backup server process: the agent listener, one replicator per source, and (when present) the
 * snapshot scheduler and the FTP server. `start()` brings them up, `stop()` takes them down in order.
 */
import type { ServerConfig } from '../shared/config/server-config';
import type { Logger } from '../shared/log';
import { LinkListener } from './link/listener';
import { autoTls, loadTls, type TlsMaterial } from './link/tls';
import { SourceReplicator, type SourceStatus } from './source-replicator';

export interface ServerPart {
  name: string;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export class BackupServer {
  readonly replicators = new Map<string, SourceReplicator>();
  private listener: LinkListener | null = null;
  private readonly parts: ServerPart[] = [];
  tls: TlsMaterial | null = null;

  constructor(
    readonly config: ServerConfig,
    readonly log: Logger,
  ) {
    for (const s of config.sourceSettings) {
      this.replicators.set(
        s.name,
        new SourceReplicator(
          s,
          config.replica.url,
          {
            maxGroupTransactions: config.replica.maxGroupTransactions,
            maxGroupDelayMs: config.replica.maxGroupDelayMs,
          },
          log.child({ source: s.name }),
        ),
      );
    }
  }

  /** Adds a part (snapshot scheduler, FTP server, HTTP endpoint) started after the listener and stopped before it. */
  addPart(part: ServerPart): void {
    this.parts.push(part);
  }

  get port(): number {
    return this.listener?.port ?? this.config.listen.port;
  }

  async start(): Promise<void> {
    const c = this.config;
    this.tls = c.tls === 'off' ? null : c.tls === 'auto' ? autoTls(c.stateDir) : loadTls(c.tls);
    const sources = new Map(c.sourceSettings.map((s) => [s.name, s]));
    this.listener = new LinkListener(
      {
        host: c.listen.host,
        port: c.listen.port,
        tls: this.tls,
        maxFrameBytes: c.maxFrameBytes,
        sources,
        throttle: c.auth,
        onAuthenticated: async (source, conn, remote, agentVersion) => {
          const r = this.replicators.get(source);
          if (!r) throw new Error(`no replicator for ${source}`);
          await r.attach(conn, remote, agentVersion);
        },
      },
      this.log,
    );
    await this.listener.start();
    for (const p of this.parts) {
      await p.start();
      this.log.debug('started', { part: p.name });
    }
    this.log.info('backup server started', { sources: c.sourceSettings.map((s) => s.name) });
  }

  async stop(): Promise<void> {
    for (const p of [...this.parts].reverse()) {
      await p
        .stop()
        .catch((e: unknown) => this.log.error('error while stopping', { part: p.name, error: String(e) }));
    }
    await this.listener?.stop();
    await Promise.all([...this.replicators.values()].map((r) => r.stop()));
    this.log.info('backup server stopped');
  }

  sourceStatus(): SourceStatus[] {
    return [...this.replicators.values()].map((r) => r.status());
  }
}
