/** Recovery tests against the real snapshot FTP server (backup-server/ftp) on a loopback port. */
import type { SnapshotFtpServer } from '../../backup-server/ftp';
import { FtpSource, type FtpTlsOptions } from '../../agent/recovery/ftp-source';
import { freePortRange, ftpOptions, PASSWORD, startServer, USER } from '../ftp/fixtures';

export { PASSWORD, USER };

export async function startFtp(
  root: string,
  tls?: { certFile: string; keyFile: string; required: boolean },
): Promise<SnapshotFtpServer> {
  return startServer(ftpOptions(root, await freePortRange(), tls ? { tls } : {}));
}

export function ftpSource(
  server: SnapshotFtpServer,
  over: { password?: string; tls?: Partial<FtpTlsOptions>; timeoutMs?: number } = {},
): FtpSource {
  return new FtpSource({
    host: '127.0.0.1',
    port: server.port ?? 0,
    user: USER,
    password: over.password ?? PASSWORD,
    tls: { require: false, ...over.tls },
    timeoutMs: over.timeoutMs ?? 10_000,
  });
}
