/**
 * The backup server process: the agent listener, one replicator per source, the source states
 * (LIVE/DEAD/CLOSE) with the operator's hooks, and (when present) the snapshot scheduler and the FTP
 * server. `start()` brings them up, `stop()` takes them down in order.
 */
import type { ServerConfig } from '../shared/config/server-config';
import type { Logger } from '../shared/log';
import { HookDispatcher, hooksFromConfig } from './hooks/hook-dispatcher';
import { hookPayload } from './hooks/hook-event';
import { LinkListener } from './link/listener';
import { autoTls, loadTls, type TlsMaterial } from './link/tls';
import { SourceReplicator, type SourceStatus } from './source-replicator';
import { SourceStateTracker } from './source-state-tracker';

export interface ServerPart {
  name: string;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export class BackupServer {
  readonly replicators = new Map<string, SourceReplicator>();
  readonly states: SourceStateTracker;
  readonly hooks: HookDispatcher;
  private listener: LinkListener | null = null;
  private readonly parts: ServerPart[] = [];
  tls: TlsMaterial | null = null;

  constructor(
    readonly config: ServerConfig,
    readonly log: Logger,
  ) {
    this.states = new SourceStateTracker(
      config.sourceSettings.map((s) => s.name),
      {
        deadAfterMs: config.heartbeat.deadAfterSeconds * 1000,
        appliedLsn: (source) => this.replicators.get(source)?.status().appliedLsn ?? null,
      },
      log.child({ part: 'states' }),
    );
    this.hooks = new HookDispatcher(
      hooksFromConfig(config.hooks),
      config.hooks,
      log.child({ part: 'hooks' }),
    );
    this.states.onTransition((e) => this.hooks.dispatch(hookPayload(e)));
    for (const s of config.sourceSettings) {
      this.replicators.set(
        s.name,
        new SourceReplicator(
          s,
          config.replica.url,
          {
            maxGroupTransactions: config.replica.maxGroupTransactions,
            maxGroupDelayMs: config.replica.maxGroupDelayMs,
            applyWhileStreaming: config.replica.applyWhileStreaming,
          },
          log.child({ source: s.name }),
          (event, source) => this.states.handle(event, source),
          config.replica.initialCopy,
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
    this.states.start();
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
    this.states.stop();
    await this.hooks.stop();
    this.log.info('backup server stopped');
  }

  sourceStatus(): SourceStatus[] {
    return [...this.replicators.values()].map((r) => r.status());
  }
}
