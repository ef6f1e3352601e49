/**
 * Snapshots read from the backup server over FTP (basic-ftp). FTPS when the server offers it (AUTH TLS),
 * plain FTP otherwise unless TLS is required. The connection is opened lazily and reopened after any failure.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { isIP } from 'node:net';
import { Writable } from 'node:stream';
import type { ConnectionOptions, TLSSocket } from 'node:tls';
import { Client, FTPError } from 'basic-ftp';
import { PgferryError } from '../../shared/errors';
import type { Logger } from '../../shared/log';
import type { SnapshotSource, SourceEntry } from './source';

export interface FtpTlsOptions {
  /** refuse a server that offers no TLS */
  require: boolean;
  /** PEM file of the CA (or the self-signed certificate) to trust */
  caFile?: string;
  /** SHA-256 fingerprint of the server certificate to pin (64 hex digits, colons allowed) */
  fingerprint?: string;
  /** accept any certificate (encrypted, not authenticated) */
  insecure?: boolean;
}

export interface FtpSourceOptions {
  host: string;
  port: number;
  user: string;
  password: string;
  tls: FtpTlsOptions;
  /** control/data inactivity timeout */
  timeoutMs?: number;
  logger?: Logger;
}

export function normalizeFingerprint(fp: string): string {
  return fp.replace(/:/g, '').toUpperCase();
}

/** True for an FTP reply that means "this will not work by retrying" (5xx). */
export function isPermanentFtpError(e: unknown): boolean {
  return e instanceof FTPError && e.code >= 500;
}

export class FtpSource implements SnapshotSource {
  readonly description: string;
  private client: Client | null = null;
  private connecting: Promise<Client> | null = null;
  /** true once connected over TLS */
  secure = false;

  constructor(private readonly opts: FtpSourceOptions) {
    this.description = `ftp://${opts.user}@${opts.host}:${opts.port}`;
  }

  private secureOptions(): ConnectionOptions {
    const t = this.opts.tls;
    // the name checked against the certificate (SNI only for names: RFC 6066 forbids IP addresses there)
    const o: ConnectionOptions = isIP(this.opts.host)
      ? { host: this.opts.host }
      : { servername: this.opts.host };
    if (t.fingerprint || t.insecure) o.rejectUnauthorized = false;
    if (t.caFile) o.ca = fs.readFileSync(t.caFile);
    return o;
  }

  private async open(): Promise<Client> {
    const { host, port, user, password, tls } = this.opts;
    const client = new Client(this.opts.timeoutMs ?? 30_000);
    try {
      await client.connect(host, port);
    } catch (e) {
      client.close();
      throw new PgferryError(
        'FTP_UNAVAILABLE',
        `cannot reach the FTP server ${host}:${port}: ${describe(e)}`,
        {
          cause: e,
        },
      );
    }
    this.secure = false;
    try {
      await client.useTLS(this.secureOptions());
      this.secure = true;
    } catch (e) {
      if (!(e instanceof FTPError) || tls.require) {
        client.close();
        const why =
          e instanceof FTPError ? `it offers no TLS (AUTH TLS: ${e.code} ${e.message})` : describe(e);
        throw new PgferryError('FTP_TLS_FAILED', `TLS with the FTP server ${host}:${port} failed: ${why}`, {
          cause: e,
        });
      }
      this.opts.logger?.warn(
        `the FTP server ${host}:${port} offers no TLS: the password and the snapshot travel in clear text (--require-tls refuses this)`,
      );
    }
    if (this.secure && tls.fingerprint) this.checkFingerprint(client, tls.fingerprint);
    try {
      await client.login(user, password);
      await client.useDefaultSettings();
    } catch (e) {
      client.close();
      if (e instanceof FTPError && e.code === 530)
        throw new PgferryError(
          'FTP_AUTH_FAILED',
          `the FTP server ${host}:${port} refused user "${user}": ${e.message}`,
          { cause: e },
        );
      throw new PgferryError(
        'FTP_UNAVAILABLE',
        `login at the FTP server ${host}:${port} failed: ${describe(e)}`,
        {
          cause: e,
        },
      );
    }
    return client;
  }

  private checkFingerprint(client: Client, expected: string): void {
    const socket = client.ftp.socket as TLSSocket;
    const seen = normalizeFingerprint(socket.getPeerCertificate().fingerprint256 ?? '');
    if (seen !== normalizeFingerprint(expected)) {
      client.close();
      throw new PgferryError(
        'FTP_TLS_FAILED',
        `the FTP server's certificate has fingerprint ${seen}, not the pinned ${normalizeFingerprint(expected)}`,
      );
    }
  }

  private async ensure(): Promise<Client> {
    if (this.client && !this.client.closed) return this.client;
    this.client = null;
    if (!this.connecting) {
      this.connecting = this.open().finally(() => {
        this.connecting = null;
      });
    }
    this.client = await this.connecting;
    return this.client;
  }

  async list(dir: string): Promise<SourceEntry[]> {
    const client = await this.ensure();
    try {
      const entries = await client.list(remote(dir));
      return entries.map((f) => ({ name: f.name, isDirectory: f.isDirectory, size: f.size }));
    } catch (e) {
      if (e instanceof FTPError && e.code === 550) return [];
      throw e;
    }
  }

  async readText(file: string, maxBytes: number): Promise<string | null> {
    const client = await this.ensure();
    const chunks: Buffer[] = [];
    let size = 0;
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        size += chunk.length;
        if (size > maxBytes) return cb(new Error(`${file} is larger than ${maxBytes} bytes`));
        chunks.push(chunk);
        cb();
      },
    });
    try {
      await client.downloadTo(sink, remote(file));
    } catch (e) {
      if (e instanceof FTPError && e.code >= 550 && e.code <= 551) return null;
      throw e;
    }
    return Buffer.concat(chunks).toString('utf8');
  }

  async download(file: string, dest: Writable, startAt: number): Promise<void> {
    const client = await this.ensure();
    await client.downloadTo(dest, remote(file), startAt);
  }

  abort(): void {
    this.client?.close();
  }

  async close(): Promise<void> {
    const c = this.client;
    this.client = null;
    if (c && !c.closed) {
      await c.send('QUIT').catch(() => undefined);
      c.close();
    }
  }

  /** SHA-256 fingerprint of the server certificate seen on the control connection (for messages). */
  peerFingerprint(): string | null {
    const socket = this.client?.ftp.socket as TLSSocket | undefined;
    if (!this.secure || !socket) return null;
    return socket.getPeerCertificate().fingerprint256 ?? null;
  }
}

function remote(p: string): string {
  return `/${p.replace(/^\/+/, '')}`;
}

function describe(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** For tests and messages: the SHA-256 fingerprint (colon form) of a PEM certificate. */
export function certificateFingerprint(pem: string): string {
  const b64 = pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, '');
  const hex = createHash('sha256').update(Buffer.from(b64, 'base64')).digest('hex').toUpperCase();
  return hex.match(/../g)?.join(':') ?? hex;
}
