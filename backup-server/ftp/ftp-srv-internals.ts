/**
 * The parts of ftp-srv 4.6.3 that its typings do not declare, reached through narrow interfaces and runtime
 * guards (never `any`). Everything ftp-srv-specific that is not in `ftp-srv.d.ts` lives here, so an upgrade
 * has one file to check. Source of truth: node_modules/ftp-srv/src/{index,connection}.js, connector/*.js.
 */
import type { EventEmitter } from 'node:events';
import type * as net from 'node:net';

/** Thrown by our file system: ftp-srv replies with its own code (550/551/451...) and `message`, never more. */
export class FtpReplyError extends Error {
  constructor(
    message: string,
    readonly code = 550,
  ) {
    super(message);
    this.name = 'FtpReplyError';
  }
}

/** A command-socket-level view of one ftp-srv connection. */
export interface FtpConnectionInternals {
  id: string;
  secure: boolean;
  commandSocket: net.Socket | null;
  connector: { dataSocket?: net.Socket | null; dataServer?: net.Server | null } | null;
  commands: { handle(command: unknown): unknown };
  reply(code: number, message: string): Promise<unknown>;
}

function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null;
}

export function isFtpConnection(x: unknown): x is FtpConnectionInternals {
  return (
    isRecord(x) &&
    typeof x.id === 'string' &&
    isRecord(x.commands) &&
    typeof x.commands.handle === 'function' &&
    typeof x.reply === 'function'
  );
}

/** The net/tls server behind an FtpSrv instance (for the bound address). */
export function netServerOf(ftp: EventEmitter): net.Server | null {
  const s: unknown = Reflect.get(ftp, 'server');
  return isRecord(s) && typeof s.address === 'function' && typeof s.close === 'function'
    ? (s as unknown as net.Server)
    : null;
}

/** ftp-srv's mutable options object (pasv_url accepts a function at runtime; the typings say string). */
export function setPassiveUrl(ftp: EventEmitter, resolve: (clientIp: string) => string): void {
  const options: unknown = Reflect.get(ftp, 'options');
  if (!isRecord(options)) throw new Error('ftp-srv internals changed: no options object on the server');
  options.pasv_url = resolve;
}

/** Directive of a raw command line or of a parsed ftp-srv command object. */
export function directiveOf(command: unknown): string {
  if (typeof command === 'string') return command.trim().split(' ')[0].toUpperCase();
  if (isRecord(command) && typeof command.directive === 'string') return command.directive.toUpperCase();
  return '';
}

/** Removes the "::ffff:" prefix of IPv4-mapped IPv6 addresses. */
export function plainAddress(address: string | undefined): string {
  if (!address) return '';
  return address.startsWith('::ffff:') ? address.slice(7) : address;
}

export function isLoopback(address: string): boolean {
  return address === '::1' || address.startsWith('127.');
}

/**
 * ftp-srv 4.6.3's `disconnectClient` arms a timer it never clears (1 s for every closed session), which keeps
 * the process alive after stop(). This is the same logic without that timer.
 */
export function replaceDisconnectClient(ftp: EventEmitter, onError: (error: unknown) => void): void {
  const connections: unknown = Reflect.get(ftp, 'connections');
  if (!isRecord(connections) || typeof Reflect.get(ftp, 'disconnectClient') !== 'function') {
    throw new Error('ftp-srv internals changed: no connections map or disconnectClient on the server');
  }
  Reflect.set(ftp, 'disconnectClient', (id: string) => {
    const client = connections[id];
    if (!client) return Promise.resolve();
    delete connections[id];
    if (isRecord(client) && typeof client.close === 'function') {
      try {
        Promise.resolve(Reflect.apply(client.close, client, [0])).catch(onError);
      } catch (e) {
        onError(e);
      }
    }
    return Promise.resolve('Disconnected');
  });
}
