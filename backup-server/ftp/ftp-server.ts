/**
 * The snapshot FTP server inside `pgferry server`: ftp-srv with a read-only, confined file system
 * (read-only-fs.ts), one password-protected user with throttled failures (ftp-login.ts), explicit FTPS
 * (AUTH TLS) when a certificate is configured, and logs through the product's logger.
 *
 * It never owns the process: the SIGTERM/SIGINT/SIGQUIT handlers ftp-srv installs in its constructor (they
 * call process.exit) are removed at once; the caller stops it with `stop()`, which drops every session,
 * download in progress included, and returns within seconds.
 *
 * FTPS note: Python's ftplib `FTP_TLS` cannot transfer data with ftp-srv (425): ftp-srv waits for the TLS
 * handshake on the data socket before replying 150, ftplib starts it only after 150, and ftp-srv always
 * encrypts data once the control channel is TLS. curl, basic-ftp and FileZilla work. Plain ftplib works.
 */
import type { EventEmitter } from 'node:events';
import { FtpSrv } from 'ftp-srv';
import { PgferryError } from '../../shared/errors';
import type { Logger } from '../../shared/log';
import { bunyanToWinston } from './bunyan-adapter';
import { guardCommands } from './command-guard';
import { FtpAuthenticator, FtpLoginRefused, TLS_REQUIRED } from './ftp-login';
import { type SnapshotFtpOptions, ftpOptionsFromConfig, loadTls, parsePortRange } from './ftp-options';
import {
  type FtpConnectionInternals,
  isFtpConnection,
  isLoopback,
  netServerOf,
  plainAddress,
  replaceDisconnectClient,
  setPassiveUrl,
} from './ftp-srv-internals';
import { ReadOnlyFs } from './read-only-fs';
import { SnapshotTree } from './snapshot-tree';

/** Refused with "502 Command blacklisted" before and after login. */
export const WRITE_COMMANDS = ['STOR', 'APPE', 'STOU', 'DELE', 'RMD', 'MKD', 'RNFR', 'RNTO', 'SITE'] as const;

const SIGNALS = ['SIGTERM', 'SIGINT', 'SIGQUIT'] as const;
const GREETING = 'pgferry snapshots (read-only)';
/** stop() gives ftp-srv this long to finish closing after every socket was destroyed */
const STOP_GRACE_MS = 3000;
const KEEPALIVE_MS = 60_000;

interface Session {
  connection: FtpConnectionInternals;
  fs?: ReadOnlyFs;
}

/** Runs `create` and removes any signal listener it added (ftp-srv's constructor adds three). */
function withoutNewSignalHandlers<T>(create: () => T): T {
  const before = new Map(SIGNALS.map((s) => [s, new Set(process.listeners(s))]));
  try {
    return create();
  } finally {
    for (const s of SIGNALS) {
      for (const l of process.listeners(s)) if (!before.get(s)?.has(l)) process.removeListener(s, l);
    }
  }
}

function listenError(e: unknown, host: string, port: number): PgferryError {
  const code = (e as NodeJS.ErrnoException).code;
  const where = `${host}:${port}`;
  const message =
    code === 'EADDRINUSE'
      ? `ftp.port: ${where} is already in use by another program: stop it or choose another ftp.port`
      : code === 'EACCES'
        ? `ftp.port: permission denied to listen on ${where} (ports below 1024 need privileges): choose a port above 1024, e.g. 2121`
        : code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND'
          ? `ftp.host: "${host}" is not an address of this machine: use 0.0.0.0 or one of its addresses`
          : `cannot start the FTP server on ${where}: ${(e as Error).message}`;
  return new PgferryError('CONFIG_INVALID', message, { cause: e, details: { host, port, code } });
}

export class SnapshotFtpServer {
  private ftp: FtpSrv | null = null;
  private readonly sessions = new Map<string, Session>();
  private readonly auth: FtpAuthenticator;
  private readonly tree: SnapshotTree;

  constructor(
    private readonly opts: SnapshotFtpOptions,
    private readonly logger: Logger,
  ) {
    parsePortRange(opts.passivePorts);
    this.auth = new FtpAuthenticator(opts);
    this.tree = new SnapshotTree(opts.root);
  }

  static fromConfig(config: Parameters<typeof ftpOptionsFromConfig>[0], logger: Logger): SnapshotFtpServer {
    return new SnapshotFtpServer(ftpOptionsFromConfig(config), logger);
  }

  /** The bound control port (useful with port 0), or null when not listening. */
  get port(): number | null {
    const addr = this.ftp ? netServerOf(this.ftp)?.address() : null;
    return addr && typeof addr === 'object' ? addr.port : null;
  }

  get running(): boolean {
    return this.ftp !== null;
  }

  /** Number of open FTP sessions (status, tests). */
  get sessionCount(): number {
    return this.sessions.size;
  }

  /**
   * Starts listening. Throws PgferryError('CONFIG_INVALID') naming the field when the port is taken, the
   * host is not local, or the TLS files are unusable. Does nothing when `enabled` is false.
   */
  async start(): Promise<void> {
    if (this.ftp) return;
    const { opts, logger } = this;
    if (!opts.enabled) {
      logger.info('FTP server disabled (ftp.enabled: false)', { component: 'ftp' });
      return;
    }
    const passive = parsePortRange(opts.passivePorts);
    const tls = opts.tls ? loadTls(opts.tls) : false;
    const host = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
    const ftp = withoutNewSignalHandlers(
      () =>
        new FtpSrv({
          url: `ftp://${host}:${opts.port}`,
          pasv_min: passive.min,
          pasv_max: passive.max,
          pasv_url: opts.passiveAddress ?? opts.host,
          anonymous: false,
          greeting: GREETING,
          blacklist: [...WRITE_COMMANDS],
          tls,
          log: bunyanToWinston(logger),
          timeout: 0,
        }),
    );
    setPassiveUrl(ftp, (clientIp) => this.passiveAddressFor(clientIp));
    replaceDisconnectClient(ftp, (e) =>
      logger.debug('FTP session close failed', { component: 'ftp', error: String(e) }),
    );
    this.wire(ftp);
    try {
      await ftp.listen();
    } catch (e) {
      ftp.removeAllListeners();
      throw listenError(e, opts.host, opts.port);
    }
    this.ftp = ftp;
    logger.info('FTP server listening', {
      component: 'ftp',
      host: opts.host,
      port: this.port,
      passivePorts: opts.passivePorts,
      passiveAddress: opts.passiveAddress ?? '(the address the client connected to)',
      tls: opts.tls ? (opts.tls.required ? 'required' : 'optional') : 'off',
      root: opts.root,
    });
    if (opts.defaultPassword) {
      logger.warn(
        `FTP accepts the default password "backup" for user "${opts.user}": set ftp.passwordHash (from "pgferry hash-password"), ftp.passwordFile or PGFERRY_FTP_PASSWORD`,
        { component: 'ftp' },
      );
    }
    if (!opts.tls) {
      logger.info('FTP without TLS: passwords and snapshots cross the network in clear; set ftp.tls', {
        component: 'ftp',
      });
    }
  }

  /** Closes every session (downloads in progress are cut) and the listener; returns within seconds. */
  async stop(): Promise<void> {
    const ftp = this.ftp;
    if (!ftp) return;
    this.ftp = null;
    const closing = Promise.resolve(ftp.close()).catch((e: unknown) =>
      this.logger.warn('FTP server close reported an error', { component: 'ftp', error: String(e) }),
    );
    for (const session of this.sessions.values()) this.dropSession(session);
    this.sessions.clear();
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, STOP_GRACE_MS);
    });
    await Promise.race([closing, grace]);
    clearTimeout(timer);
    this.logger.info('FTP server stopped', { component: 'ftp' });
  }

  private dropSession(session: Session): void {
    session.fs?.closeStreams();
    const { connector, commandSocket } = session.connection;
    connector?.dataSocket?.destroy();
    connector?.dataServer?.close();
    commandSocket?.destroy();
  }

  private wire(ftp: FtpSrv): void {
    const { opts, logger } = this;
    const events: EventEmitter = ftp;
    events.on('connect', (payload: { connection?: unknown }) => {
      const connection = payload?.connection;
      if (!isFtpConnection(connection)) return;
      this.sessions.set(connection.id, { connection });
      connection.commandSocket?.setKeepAlive(true, KEEPALIVE_MS);
      guardCommands(connection, {
        tlsConfigured: Boolean(opts.tls),
        tlsRequired: Boolean(opts.tls?.required),
      });
    });
    events.on('disconnect', (payload: { id?: unknown }) => {
      const session = typeof payload?.id === 'string' ? this.sessions.get(payload.id) : undefined;
      if (!session) return;
      session.fs?.closeStreams();
      this.sessions.delete(payload.id as string);
    });
    events.on('server-error', (payload: { error?: unknown }) => {
      // before listen() succeeded, the error is the one start() throws: the caller reports it
      if (this.ftp === ftp)
        logger.error('FTP server error', { component: 'ftp', error: String(payload?.error) });
    });
    ftp.on('client-error', ({ context, error }) => {
      logger.debug('FTP client connection error', { component: 'ftp', context, error: error?.message });
    });
    ftp.on('login', ({ connection, username, password }, resolve, reject) => {
      const address = plainAddress(connection.ip);
      if (opts.tls?.required && !connection.secure) {
        reject(new FtpLoginRefused(TLS_REQUIRED));
        return;
      }
      const decision = this.auth.check(address, username, password);
      if (decision.tag === 'refused') {
        const retryAfterSeconds = Math.ceil(decision.retryAfterMs / 1000);
        if (decision.reason === 'throttled') {
          logger.debug('FTP login refused: address locked out', {
            component: 'ftp',
            address,
            retryAfterSeconds,
          });
        } else if (retryAfterSeconds > 0) {
          logger.warn(
            `FTP logins from ${address} locked for ${retryAfterSeconds} s after repeated failures`,
            {
              component: 'ftp',
              address,
              user: username.slice(0, 64),
            },
          );
        } else {
          logger.warn('FTP login failed', { component: 'ftp', address, user: username.slice(0, 64) });
        }
        reject(new FtpLoginRefused(decision.message));
        return;
      }
      const fs = new ReadOnlyFs(connection, { tree: this.tree, root: opts.root, logger });
      const session = isFtpConnection(connection) ? this.sessions.get(connection.id) : undefined;
      if (session) session.fs = fs;
      logger.info('FTP login', { component: 'ftp', address, user: username, tls: connection.secure });
      resolve({ fs });
    });
  }

  /**
   * The address announced in PASV replies: for loopback clients and without ftp.passiveAddress, the address
   * the client connected to; otherwise the configured one (NAT).
   */
  private passiveAddressFor(clientIp: string): string {
    const client = plainAddress(clientIp);
    const local = this.localAddressSeenBy(client);
    if (isLoopback(client)) return local ?? '127.0.0.1';
    return this.opts.passiveAddress ?? local ?? this.opts.host;
  }

  /** The local IPv4 address of a session from `client` (PASV can only announce IPv4). */
  private localAddressSeenBy(client: string): string | undefined {
    for (const { connection } of this.sessions.values()) {
      const socket = connection.commandSocket;
      if (socket && plainAddress(socket.remoteAddress) === client) {
        const local = plainAddress(socket.localAddress);
        if (local && !local.includes(':')) return local;
      }
    }
    return undefined;
  }
}
