/** A throwaway self-signed certificate for loopback TLS in tests (openssl, valid one day). */
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';

export interface CertFiles {
  keyFile: string;
  certFile: string;
}

/**
 * Writes `key.pem` and `cert.pem` into `dir` (which must exist) for CN `commonName`, with 127.0.0.1 as
 * a subject alternative name so that clients which verify can be pointed at the file.
 */
export function writeSelfSignedCert(dir: string, commonName = 'localhost'): CertFiles {
  const keyFile = path.join(dir, 'key.pem');
  const certFile = path.join(dir, 'cert.pem');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-subj',
      `/CN=${commonName}`,
      '-addext',
      'subjectAltName=IP:127.0.0.1',
      '-days',
      '1',
      '-keyout',
      keyFile,
      '-out',
      certFile,
    ],
    { stdio: 'ignore' },
  );
  return { keyFile, certFile };
}
