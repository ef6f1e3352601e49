/** `pgferry snapshot create | list | verify`: snapshots of the sources' replicas, taken, listed, checked. */
import type { Command } from 'commander';
import { loadServerConfig } from '../../shared/config/server-config';
import { ERROR_CODES, PgferryError } from '../../shared/errors';
import { createLogger } from '../../shared/log';
import { formatBytes } from '../../shared/units';
import type { SnapshotInfo } from '../snapshot/catalog';
import type { RunRecord } from '../snapshot/run-history';
import { SnapshotService } from '../snapshot/snapshot-service';
import { corruptError } from '../snapshot/verify';

/** The service as the CLI uses it: the server's config, logging where the server logs. */
export function openSnapshotService(configFile: string): SnapshotService {
  const config = loadServerConfig(configFile);
  const logger = createLogger({ ...config.log, defaultMeta: { role: 'cli' } });
  return new SnapshotService({ config, logger });
}

function print(line = ''): void {
  process.stdout.write(`${line}\n`);
}

function printJson(value: unknown): void {
  print(JSON.stringify(value, null, 2));
}

export function localTime(iso: string): string {
  return new Date(iso).toLocaleString('sv-SE');
}

function describeRun(r: RunRecord): string {
  const tables = `${r.tablesWritten + r.tablesLinked} tables (${r.tablesWritten} written, ${r.tablesLinked} linked)`;
  const size = `${formatBytes(r.totalBytes)} (${formatBytes(r.writtenBytes)} new)`;
  const head = `${r.id}  ${r.source}  ${r.status}`;
  if (r.status !== 'ok') return `${head}: ${r.error}`;
  return `${head}  ${tables}  ${size}  LSN ${r.lsn}  ${(r.durationMs / 1000).toFixed(1)} s`;
}

function registerCreate(snapshot: Command): void {
  snapshot
    .command('create')
    .description(
      'take a snapshot now (the same run as the schedule: checks, hooks, verify, rotation); prints its id',
    )
    .requiredOption('-c, --config <file>', 'server config (YAML)')
    .option('-s, --source <name>', 'only this source (default: every configured source, one after another)')
    .option('--json', 'print the run records as JSON')
    .addHelpText(
      'after',
      `
A manual run ignores the maintenance window and snapshots.enabled (it was asked for explicitly).
Output: one line per snapshot: ID  SOURCE  STATUS  tables  size  LSN  duration.

Examples:
  pgferry snapshot create --config /etc/pgferry/server.yaml
  pgferry snapshot create --config /etc/pgferry/server.yaml --source monitoring --json
`,
    )
    .action(async (opts: { config: string; source?: string; json?: boolean }) => {
      const service = openSnapshotService(opts.config);
      const sources = opts.source ? [service.sourceSettings(opts.source).name] : service.sourceNames();
      const records: RunRecord[] = [];
      for (const source of sources) records.push((await service.createSnapshot(source, 'manual')).record);
      const failed = records.find((r) => r.status === 'failed');
      if (opts.json) printJson(opts.source ? records[0] : records);
      else for (const r of records) if (r.status === 'ok') print(describeRun(r));
      for (const r of records)
        for (const w of r.warnings) process.stderr.write(`warning: ${r.source}: ${w}\n`);
      if (!failed) return;
      const code = (failed.errorCode ?? 'SNAPSHOT_FAILED') as keyof typeof ERROR_CODES;
      if (opts.json) {
        process.exitCode = ERROR_CODES[code]?.exit ?? 1;
        return;
      }
      throw new PgferryError(
        code in ERROR_CODES ? code : 'SNAPSHOT_FAILED',
        `snapshot of ${failed.source}: ${failed.error}`,
      );
    });
}

function listRow(s: SnapshotInfo): Record<string, unknown> {
  const m = s.manifest;
  return {
    source: s.source,
    id: s.id,
    path: s.path,
    finishedAt: m.finishedAt,
    lsn: m.lsn,
    totalBytes: m.totalBytes,
    tables: m.tables.length,
    tablesLinked: m.tables.filter((t) => t.linked).length,
    appVersion: m.appVersion,
    pgMajor: m.pgMajor,
  };
}

function printTable(rows: string[][]): void {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  for (const r of rows)
    print(
      r
        .map((c, i) => c.padEnd(widths[i]))
        .join('  ')
        .trimEnd(),
    );
}

function registerList(snapshot: Command): void {
  snapshot
    .command('list')
    .description('list complete snapshots, newest first')
    .requiredOption('-c, --config <file>', 'server config (YAML)')
    .option('-s, --source <name>', 'only this source')
    .option('--json', 'print JSON')
    .addHelpText(
      'after',
      `
Partial snapshots (being written, or left by a crash) are never listed.

Examples:
  pgferry snapshot list --config /etc/pgferry/server.yaml
  pgferry snapshot list --config /etc/pgferry/server.yaml --source monitoring --json
`,
    )
    .action(async (opts: { config: string; source?: string; json?: boolean }) => {
      const service = openSnapshotService(opts.config);
      const list = await service.list(opts.source);
      if (opts.json) return printJson(list.map(listRow));
      if (!list.length) {
        print(`no complete snapshots${opts.source ? ` of ${opts.source}` : ''} yet`);
        return;
      }
      const header = ['SOURCE', 'ID', 'FINISHED (local time)', 'LSN', 'SIZE', 'TABLES', 'APP VERSION'];
      printTable([
        header,
        ...list.map((s) => [
          s.source,
          s.id,
          localTime(s.manifest.finishedAt),
          s.manifest.lsn,
          formatBytes(s.manifest.totalBytes),
          String(s.manifest.tables.length),
          s.manifest.appVersion ?? '-',
        ]),
      ]);
    });
}

function registerVerify(snapshot: Command): void {
  snapshot
    .command('verify')
    .description("re-check every file of a snapshot against its manifest's size and SHA-256")
    .argument('<id>', 'snapshot id (as listed), or SOURCE/ID')
    .requiredOption('-c, --config <file>', 'server config (YAML)')
    .option('-s, --source <name>', 'the source, when the id exists for several')
    .option('--json', 'print the result as JSON')
    .addHelpText(
      'after',
      `
Exit code 0 when every file matches; ${ERROR_CODES.SNAPSHOT_CORRUPT.exit} naming the first bad file otherwise.

Examples:
  pgferry snapshot verify --config /etc/pgferry/server.yaml 20261122T031500123Z
  pgferry snapshot verify --config /etc/pgferry/server.yaml monitoring/20261122T031500123Z --json
`,
    )
    .action(async (id: string, opts: { config: string; source?: string; json?: boolean }) => {
      const service = openSnapshotService(opts.config);
      const r = await service.verify(id, opts.source);
      if (opts.json) {
        printJson(r);
        if (!r.ok) process.exitCode = ERROR_CODES.SNAPSHOT_CORRUPT.exit;
        return;
      }
      if (!r.ok) {
        for (const p of r.problems) process.stderr.write(`BAD  ${p.file}: ${p.problem}\n`);
        throw corruptError(r);
      }
      print(
        `ok: ${r.source}/${r.id}: ${r.filesHashed} files match their SHA-256 (${formatBytes(r.bytesHashed)} read)`,
      );
    });
}

export function registerSnapshot(program: Command): void {
  const snapshot = program
    .command('snapshot')
    .description('take, list and verify snapshots of the replicas')
    .addHelpText(
      'after',
      `
Examples:
  pgferry snapshot create --config /etc/pgferry/server.yaml
  pgferry snapshot list --config /etc/pgferry/server.yaml
  pgferry snapshot verify --config /etc/pgferry/server.yaml 20261122T031500123Z
`,
    );
  registerCreate(snapshot);
  registerList(snapshot);
  registerVerify(snapshot);
}
