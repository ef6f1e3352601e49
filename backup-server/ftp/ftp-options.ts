/**
 * The settings the FTP server needs, narrowed from the resolved server config (so tests and the demo can
 * build one without a whole config).
 */
import * as fs from 'node:fs';
import * as tls from 'node:tls';
import type { PasswordHash } from '../../shared/auth/password';
import type { ServerConfig } from '../../shared/config/server-config';
import { PgferryError } from '../../shared/errors';

export interface FtpTlsOptions {
  certFile: string;
  keyFile: string;
  /** refuse USER/PASS until AUTH TLS succeeded */
  required: boolean;
}

export interface SnapshotFtpOptions {
  enabled: boolean;
  host: string;
  /** 0 binds any free port (tests); read the bound one from `SnapshotFtpServer.port` */
  port: number;
  /** e.g. "30000-30009" */
  passivePorts: string;
  /** address announced in PASV replies (behind NAT); default: the address the client connected to */
  passiveAddress?: string;
  user: string;
  passwordHash: PasswordHash;
  /** the password is the default "backup": warned about at every start */
  defaultPassword: boolean;
  tls?: FtpTlsOptions;
  maxFailures: number;
  lockSeconds: number;
  failureWindowSeconds?: number;
  /** the snapshot folder, served as "/" */
  root: string;
}

export function ftpOptionsFromConfig(
  config: Pick<ServerConfig, 'ftp' | 'snapshots' | 'ftpPasswordHash' | 'ftpDefaultPassword'>,
): SnapshotFtpOptions {
  const f = config.ftp;
  return {
    enabled: f.enabled,
    host: f.host,
    port: f.port,
    passivePorts: f.passivePorts,
    passiveAddress: f.passiveAddress,
    user: f.user,
    passwordHash: config.ftpPasswordHash,
    defaultPassword: config.ftpDefaultPassword,
    tls: f.tls,
    maxFailures: f.maxFailures,
    lockSeconds: f.lockSeconds,
    root: config.snapshots.dir,
  };
}

export interface PortRange {
  min: number;
  max: number;
}

export function parsePortRange(text: string, field = 'ftp.passivePorts'): PortRange {
  const m = /^\s*(\d+)\s*-\s*(\d+)\s*$/.exec(text);
  const min = m ? Number(m[1]) : Number.NaN;
  const max = m ? Number(m[2]) : Number.NaN;
  if (!(min >= 1 && max <= 65535 && min <= max)) {
    throw new PgferryError(
      'CONFIG_INVALID',
      `${field}: "${text}" is not a port range: expected "FIRST-LAST" with 1 <= FIRST <= LAST <= 65535, e.g. "30000-30009"`,
    );
  }
  return { min, max };
}

export interface TlsMaterial {
  cert: Buffer;
  key: Buffer;
}

function readPem(file: string, field: string, what: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (e) {
    throw new PgferryError(
      'CONFIG_INVALID',
      `${field}: cannot read ${what} "${file}" (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}): give the path of a readable PEM file`,
      { cause: e },
    );
  }
}

/** Reads the certificate and key and checks that they form a usable pair. */
export function loadTls(opts: FtpTlsOptions): TlsMaterial {
  const material = {
    cert: readPem(opts.certFile, 'ftp.tls.certFile', 'the certificate'),
    key: readPem(opts.keyFile, 'ftp.tls.keyFile', 'the private key'),
  };
  try {
    tls.createSecureContext(material);
  } catch (e) {
    throw new PgferryError(
      'CONFIG_INVALID',
      `ftp.tls: the certificate "${opts.certFile}" and key "${opts.keyFile}" are not a usable PEM pair (${(e as Error).message}): check that the key belongs to the certificate`,
      { cause: e },
    );
  }
  return material;
}
