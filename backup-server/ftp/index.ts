/** The snapshot FTP server: what `pgferry server` (and the demo) use. */
export {
  buildCatalog,
  CATALOG_FILE,
  CATALOG_FORMAT_VERSION,
  listCompleteSnapshots,
  type SnapshotCatalog,
} from './catalog';
export { type FtpTlsOptions, ftpOptionsFromConfig, type SnapshotFtpOptions } from './ftp-options';
export { SnapshotFtpServer, WRITE_COMMANDS } from './ftp-server';
