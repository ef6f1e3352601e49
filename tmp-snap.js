const snap = require('./dist/test/bench/snapshot.js');
const { Cluster } = require('./dist/test/harness/cluster.js');
const { SnapshotService } = require('./dist/backup-server/snapshot/snapshot-service.js');
const { parseConfig } = require('./dist/shared/config/load.js');
const { resolveServerConfig, serverConfigSchema } = require('./dist/shared/config/server-config.js');
const { createLogger } = require('./dist/shared/log.js');
const { createDatabase } = require('./dist/test/harness/db.js');
const fs = require('fs'); const os = require('os'); const path = require('path');
(async () => {
  const cluster = await Cluster.create({ name: 'tmp-snap' });
  try {
    const url = await snap.prepareReplica(cluster, 'b1', 10);
    for (let i = 0; i < 4; i++) {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'snapx-')); fs.mkdirSync(dir + '/s');
      const raw = { stateDir: dir + '/state', sources: [{ name: 'bench', passwordHash: 'bench', replicaUrl: url }], snapshots: { dir: dir + '/s', minFreeBytes: 0, minFreePercent: 0, splitTableMinBytes: Number(process.env.SPLIT ?? 1000000), parallelCopies: Number(process.env.PAR ?? 2) } };
      const s = new SnapshotService({ config: resolveServerConfig(parseConfig(serverConfigSchema, raw)), logger: createLogger({ level: 'debug' }) });
      const t = process.hrtime.bigint(); const cu = process.cpuUsage(); const elu0 = require('perf_hooks').performance.eventLoopUtilization();
      await s.createSnapshot('bench');
      const c2 = process.cpuUsage(cu); console.log('total', Number(process.hrtime.bigint() - t) / 1e6, 'cpu ms', (c2.user + c2.system) / 1000, 'elu active', require('perf_hooks').performance.eventLoopUtilization(elu0).active.toFixed(0));
      fs.rmSync(dir, { recursive: true });
    }
  } finally { await cluster.destroy(); }
})();
