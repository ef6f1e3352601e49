/** Jest global setup: one primary (wal_level=logical) and one backup-side cluster for the whole run. */
import { Cluster } from './cluster';

declare global {
  // eslint-disable-next-line no-var
  var __pgferryClusters: Cluster[] | undefined;
}

export default async function globalSetup(): Promise<void> {
  const [primary, backup] = await Promise.all([
    Cluster.create({ name: 'primary' }),
    Cluster.create({ name: 'backup' }),
  ]);
  globalThis.__pgferryClusters = [primary, backup];
  process.env.PGFERRY_TEST_CLUSTERS = JSON.stringify({ primary: primary.info(), backup: backup.info() });
}
