/**
 * The link's TLS material: configured cert/key files, or `tls: auto` — a self-signed pair generated once
 * (with the openssl command) into the state folder, whose SHA-256 fingerprint agents pin.
 */
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PgferryError } from '../../shared/errors';

export interface TlsMaterial {
  cert: Buffer;
  key: Buffer;
  fingerprint: string;
}

export function fingerprintOf(certPem: Buffer | string): string {
  return new X509Certificate(certPem).fingerprint256;
}

export function normalizeFingerprint(fp: string): string {
  return fp.replace(/:/g, '').toUpperCase();
}

export function loadTls(files: { certFile: string; keyFile: string }): TlsMaterial {
  try {
    const cert = fs.readFileSync(files.certFile);
    const key = fs.readFileSync(files.keyFile);
    return { cert, key, fingerprint: fingerprintOf(cert) };
  } catch (e) {
    throw new PgferryError(
      'CONFIG_INVALID',
      `tls: cannot read the certificate or key: ${(e as Error).message}`,
    );
  }
}

export function autoTls(stateDir: string): TlsMaterial {
  const dir = path.join(stateDir, 'tls');
  const certFile = path.join(dir, 'server.crt');
  const keyFile = path.join(dir, 'server.key');
  if (!fs.existsSync(certFile) || !fs.existsSync(keyFile)) {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    try {
      execFileSync(
        'openssl',
        [
          'req',
          '-x509',
          '-newkey',
          'ec',
          '-pkeyopt',
          'ec_paramgen_curve:prime256v1',
          '-nodes',
          '-days',
          '3650',
          '-subj',
          '/CN=pgferry-backup-server',
          '-keyout',
          keyFile,
          '-out',
          certFile,
        ],
        { stdio: 'pipe' },
      );
      fs.chmodSync(keyFile, 0o600);
    } catch (e) {
      throw new PgferryError(
        'CONFIG_INVALID',
        `tls: auto could not generate a certificate with openssl: ${(e as Error).message}`,
        {
          hint: 'install openssl, or set tls.certFile and tls.keyFile',
        },
      );
    }
  }
  return loadTls({ certFile, keyFile });
}
