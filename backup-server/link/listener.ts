/**
 * Accepts agent connections (TLS or plain TCP), runs the handshake, and hands each authenticated link
 * to its source. Refusals (garbage, oversized frames, wrong password, unknown source, bad version) are
 * logged with the remote address and never disturb the other links.
 */
import * as net from 'node:net';
import * as tls from 'node:tls';
import { LoginThrottle } from '../../shared/auth/throttle';
import type { SourceSettings } from '../../shared/config/server-config';
import { describeError, isPgferryError, PgferryError } from '../../shared/errors';
import type { Logger } from '../../shared/log';
import { FramedConnection } from '../../shared/protocol/connection';
import { type AgentMessage, isBulkFrame, type ServerMessage } from '../../shared/protocol/messages';
import { serverHandshake } from './handshake';
import type { TlsMaterial } from './tls';

/** Unauthenticated peers may only send small frames. */
const HANDSHAKE_MAX_FRAME_BYTES = 64 * 1024;

export interface ListenerOptions {
  host: string;
  port: number;
  tls: TlsMaterial | null;
  maxFrameBytes: number;
  sources: ReadonlyMap<string, SourceSettings>;
  throttle: { maxFailures: number; windowSeconds: number; lockSeconds: number };
  onAuthenticated: (
    source: string,
    conn: FramedConnection<AgentMessage, ServerMessage>,
    remote: string,
    agentVersion: string,
  ) => Promise<void>;
}

export class LinkListener {
  private server: net.Server | null = null;
  private readonly sockets = new Set<net.Socket>();
  private readonly throttle: LoginThrottle;

  constructor(
    private readonly opts: ListenerOptions,
    private readonly log: Logger,
  ) {
    this.throttle = new LoginThrottle({
      maxFailures: opts.throttle.maxFailures,
      windowMs: opts.throttle.windowSeconds * 1000,
      lockMs: opts.throttle.lockSeconds * 1000,
    });
  }

  get port(): number {
    const a = this.server?.address();
    return typeof a === 'object' && a ? a.port : this.opts.port;
  }

  async start(): Promise<void> {
    const onSocket = (socket: net.Socket) => this.accept(socket);
    const server = this.opts.tls
      ? tls.createServer(
          { cert: this.opts.tls.cert, key: this.opts.tls.key, minVersion: 'TLSv1.2' },
          onSocket,
        )
      : net.createServer(onSocket);
    server.on('tlsClientError', (e: Error, socket: net.Socket) =>
      this.log.warn('TLS handshake with an agent failed', {
        remoteAddress: socket.remoteAddress,
        error: e.message,
      }),
    );
    await new Promise<void>((resolve, reject) => {
      server.once('error', (e) =>
        reject(
          new PgferryError(
            'CONFIG_INVALID',
            `cannot listen on ${this.opts.host}:${this.opts.port}: ${e.message}`,
            { hint: 'choose a free listen.port or stop the other process' },
          ),
        ),
      );
      server.listen(this.opts.port, this.opts.host, () => resolve());
    });
    server.on('error', (e) => this.log.error('listener error', { error: e.message }));
    this.server = server;
    this.log.info('listening for agents', {
      host: this.opts.host,
      port: this.port,
      tls: this.opts.tls ? 'on' : 'off',
      fingerprint: this.opts.tls?.fingerprint,
    });
    if (!this.opts.tls) {
      this.log.warn(
        'TLS is off: the link is not encrypted (passwords still never cross: challenge-response is used); set tls: auto or cert files',
      );
    }
  }

  private accept(socket: net.Socket): void {
    const remote = socket.remoteAddress ?? 'unknown';
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 10_000);
    const conn = new FramedConnection<AgentMessage, ServerMessage>(
      socket,
      HANDSHAKE_MAX_FRAME_BYTES,
      isBulkFrame,
    );
    conn.on('protocolError', (e: unknown) =>
      this.log.warn('refused a connection: bad frame', { remoteAddress: remote, error: describeError(e) }),
    );
    serverHandshake(conn, this.opts.sources, this.throttle, remote)
      .then(async (r) => {
        conn.maxFrameBytes = this.opts.maxFrameBytes;
        await this.opts.onAuthenticated(r.source.name, conn, remote, r.agentVersion);
      })
      .catch((e: unknown) => {
        const level = isPgferryError(e, 'CONNECTION_LOST') ? 'info' : 'warn';
        this.log.log(level, 'refused an agent connection', {
          remoteAddress: remote,
          code: isPgferryError(e) ? e.code : 'INTERNAL',
          error: describeError(e),
        });
        conn.destroy();
      });
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = null;
    if (!server) return;
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
