/**
 * The whole recovery: choose a snapshot, fetch its manifest, refuse early what would be refused anyway,
 * download and verify every file, check the target again, create or replace it, restore. Nothing touches
 * the target before every file has passed its checksum.
 */
import * as fs from 'node:fs';
import type { Logger } from '../../shared/log';
import type { CatalogEntry } from '../../shared/snapshot/manifest';
import { formatBytes } from '../../shared/units';
import { type Choice, chooseSnapshot, listSnapshots } from './catalog';
import { type DownloadResult, downloadSnapshot, fetchManifest } from './download';
import { preflight } from './preflight';
import type { ProgressOutput } from './progress';
import { type RestoreSummary, restoreSnapshot } from './restore';
import type { SnapshotSource } from './source';
import { inspectTarget, prepareTarget } from './target';

export interface RecoveryOptions extends Choice {
  src: SnapshotSource;
  /** asked when neither snapshotId nor latest is given (the interactive pick on a TTY) */
  pick?: (entries: CatalogEntry[]) => Promise<CatalogEntry>;
  target: string;
  force: boolean;
  appVersion?: string;
  workDir: string;
  jobs?: number;
  /** keep the downloaded files after a successful restore */
  keepFiles?: boolean;
  progressOut?: ProgressOutput | null;
  plainProgressIntervalMs?: number;
  logger?: Logger;
  signal?: AbortSignal;
  onBytes?: (transferredThisRun: number) => void;
  retryDelayMs?: number;
  splitMinBytes?: number;
}

export interface RecoveryResult {
  snapshot: CatalogEntry;
  download: DownloadResult;
  restore: RestoreSummary;
  /** true when an existing database was dropped (--force) */
  replaced: boolean;
  created: boolean;
}

export async function recover(opts: RecoveryOptions): Promise<RecoveryResult> {
  const { src, logger } = opts;
  const entries = await listSnapshots(src, { source: opts.source, logger });
  const entry =
    opts.snapshotId || opts.latest || !opts.pick
      ? chooseSnapshot(entries, opts, src.description)
      : await opts.pick(chooseAmong(entries, opts, src.description));
  logger?.info(`snapshot ${entry.source}/${entry.id} (${formatBytes(entry.totalBytes)}, LSN ${entry.lsn})`);

  const { manifest, dir } = await fetchManifest(src, entry, opts.workDir);
  const checks = { appVersion: opts.appVersion, force: opts.force };
  preflight(manifest, await inspectTarget(opts.target), checks);

  const download = await downloadSnapshot({
    src,
    manifest,
    dir,
    progressOut: opts.progressOut,
    plainProgressIntervalMs: opts.plainProgressIntervalMs,
    logger,
    signal: opts.signal,
    onBytes: opts.onBytes,
    retryDelayMs: opts.retryDelayMs,
  });
  logger?.info(
    `downloaded and verified ${manifest.tables.length + 2} files (${formatBytes(download.transferredBytes)} transferred, ${download.filesKept} already complete, ${download.filesResumed} resumed)`,
  );

  // the target may have changed during a long download
  const facts = await inspectTarget(opts.target);
  preflight(manifest, facts, checks);
  const replaced = facts.exists && opts.force;
  if (replaced) logger?.warn(`dropping the database "${facts.database}" and creating it again (--force)`);
  await prepareTarget(opts.target, facts, opts.force);

  const restore = await restoreSnapshot({
    url: opts.target,
    dir,
    manifest,
    jobs: opts.jobs,
    logger,
    splitMinBytes: opts.splitMinBytes,
    signal: opts.signal,
  });
  if (!opts.keepFiles) await fs.promises.rm(dir, { recursive: true, force: true });
  return { snapshot: entry, download, restore, replaced, created: !facts.exists || replaced };
}

/** Entries to pick from interactively: of one source when --source is given, else all (the pick says). */
function chooseAmong(entries: CatalogEntry[], choice: Choice, where: string): CatalogEntry[] {
  if (entries.length === 0) chooseSnapshot(entries, choice, where);
  return entries;
}

export function formatRecoverySummary(r: RecoveryResult): string {
  const s = r.restore;
  const lines = [
    `restored snapshot ${r.snapshot.source}/${r.snapshot.id} (LSN ${r.snapshot.lsn}) into database "${s.database}"${r.replaced ? ' (replaced)' : r.created ? ' (created)' : ''}`,
    `  tables: ${s.tables}, rows: ${s.rows}, sequences: ${s.sequences}, bytes: ${formatBytes(s.bytes)}`,
    `  time: ${s.seconds.toFixed(1)} s restore (schema ${s.phases.preData.toFixed(1)} s, data ${s.phases.data.toFixed(1)} s, indexes and constraints ${s.phases.postData.toFixed(1)} s, sequences ${s.phases.sequences.toFixed(1)} s), ${r.download.seconds.toFixed(1)} s download (${formatBytes(r.download.transferredBytes)} transferred)`,
    '  every table has the row count its manifest records',
  ];
  for (const w of s.warnings) lines.push(`  warning: ${w}`);
  return lines.join('\n');
}
