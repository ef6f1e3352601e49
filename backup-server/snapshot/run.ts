/**
 * One snapshot run, the same for the schedule and `pgferry snapshot create`: enabled? inside the
 * maintenance window? destination present and writable? room for it (rotating first when that frees
 * enough)? pre-hook, snapshot, verify, post-hook, rotation. Every run lands in the history, skipped
 * and failed ones included. The caller serialises runs (see SnapshotService).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import type { ServerConfig, SourceSettings } from '../../shared/config/server-config';
import { describeError, isPgferryError, PgferryError } from '../../shared/errors';
import type { Logger } from '../../shared/log';
import { formatBytes } from '../../shared/units';
import { latestSnapshot, removeLeftovers, type SnapshotInfo } from './catalog';
import type { DiskProbe } from './disk-probe';
import { describeHook, hookSucceeded, runHook } from './hook-runner';
import { describeWindow, isInsideWindow } from './maintenance-window';
import { splitTableMinBytes } from './parallel-copy';
import { freeSpaceShortfall, type RetentionPolicy } from './retention-planner';
import { rotate } from './retention';
import type { RunHistory, RunRecord } from './run-history';
import { RunLock } from './run-lock';
import { estimateSnapshotBytes } from './space-estimate';
import { writeSnapshot } from './snapshot-writer';
import { corruptError, verifySnapshot } from './verify';

export interface RunContext {
  config: ServerConfig;
  logger: Logger;
  probe: DiskProbe;
  history: RunHistory;
  /** asks the source's agent for fresh sequence values (wired by the server process) */
  refreshSequences?: (source: string) => Promise<void>;
  now: () => Date;
}

export interface RunOutcome {
  record: RunRecord;
  snapshot: SnapshotInfo | null;
}

export function retentionPolicy(config: ServerConfig): RetentionPolicy {
  const s = config.snapshots;
  return { retentionDays: s.retentionDays, minFreeBytes: s.minFreeBytes, minFreePercent: s.minFreePercent };
}

/** Throws DESTINATION_UNAVAILABLE unless the snapshot folder exists and is writable (it is never created). */
export async function checkDestination(dir: string): Promise<void> {
  try {
    const st = await fs.promises.stat(dir);
    if (!st.isDirectory()) throw new Error('not a folder');
    await fs.promises.access(dir, fs.constants.W_OK);
  } catch (e) {
    throw new PgferryError(
      'DESTINATION_UNAVAILABLE',
      `the snapshot folder ${dir} is not usable: ${(e as Error).message}`,
      {
        hint: `mount the snapshot volume or create ${dir} (writable by the pgferry user), or fix snapshots.dir`,
      },
    );
  }
}

/** Makes room for `need` bytes before writing, rotating first when that frees enough; else DISK_FULL. */
async function ensureRoom(
  ctx: RunContext,
  src: SourceSettings,
  previous: SnapshotInfo | null,
  rec: RunRecord,
) {
  const { dir } = ctx.config.snapshots;
  const source = src.name;
  const policy = retentionPolicy(ctx.config);
  const disk = await ctx.probe.measure(dir);
  // the previous snapshot's whole size bounds the need: when even that fits, the replica need not be asked
  const upperBound = previous?.manifest.totalBytes ?? 0;
  if (!freeSpaceShortfall(disk.freeBytes - upperBound, disk.totalBytes, policy)) return;
  const need = await estimateSnapshotBytes(previous, src.replicaUrl);
  if (!freeSpaceShortfall(disk.freeBytes - need.bytes, disk.totalBytes, policy)) return;
  const opts = { dir, policy, probe: ctx.probe, logger: ctx.logger, now: ctx.now, reserveBytes: need.bytes };
  const plan = await rotate({ ...opts, dryRun: true });
  if (plan.freeBytesAfter < need.bytes) {
    throw new PgferryError(
      'DISK_FULL',
      `no room for a snapshot of ${source}: it needs about ${formatBytes(need.bytes)} (${need.basis}); ` +
        `${dir} has ${formatBytes(disk.freeBytes)} free and rotation could free about ` +
        `${formatBytes(plan.freeBytesAfter - disk.freeBytes)} more. Nothing was written or deleted.`,
      {
        hint: `free space on ${dir}, lower snapshots.retentionDays, or move snapshots.dir to a bigger volume`,
      },
    );
  }
  const done = await rotate(opts);
  rec.deleted.push(...done.deletions.map(({ source: s, id, reason }) => ({ source: s, id, reason })));
  const after = await ctx.probe.measure(dir);
  if (after.freeBytes < need.bytes) {
    throw new PgferryError(
      'DISK_FULL',
      `no room for a snapshot of ${source}: it needs about ${formatBytes(need.bytes)}, ${formatBytes(after.freeBytes)} free after rotation`,
    );
  }
  if (done.shortfall) rec.warnings.push(`taking the snapshot although ${done.shortfall}`);
}

function newRecord(source: string, trigger: RunRecord['trigger'], started: Date): RunRecord {
  return {
    id: null,
    source,
    trigger,
    startedAt: started.toISOString(),
    finishedAt: started.toISOString(),
    durationMs: 0,
    status: 'failed',
    totalBytes: 0,
    writtenBytes: 0,
    tablesWritten: 0,
    tablesLinked: 0,
    lsn: null,
    error: null,
    errorCode: null,
    hooks: {},
    deleted: [],
    warnings: [],
  };
}

async function postHook(ctx: RunContext, src: SourceSettings, rec: RunRecord, snap: SnapshotInfo | null) {
  const { hooks } = ctx.config.snapshots;
  if (!hooks.post) return;
  const r = await runHook(
    hooks.post,
    {
      PGFERRY_HOOK: 'post',
      PGFERRY_SOURCE: src.name,
      PGFERRY_SNAPSHOT_ID: rec.id ?? '',
      PGFERRY_SNAPSHOT_STATUS: rec.status,
      PGFERRY_SNAPSHOT_DIR: snap?.path ?? '',
      PGFERRY_SNAPSHOT_LSN: rec.lsn ?? '',
      PGFERRY_SNAPSHOT_BYTES: String(rec.totalBytes),
      PGFERRY_SNAPSHOT_ERROR: rec.error ?? '',
    },
    hooks.timeoutSeconds * 1000,
  );
  rec.hooks.post = r;
  if (!hookSucceeded(r)) rec.warnings.push(`post-hook ${describeHook(r)}`);
}

/** The body of a run once it holds the lock; returns the snapshot or throws why it failed. */
async function snapshotSteps(ctx: RunContext, src: SourceSettings, rec: RunRecord): Promise<SnapshotInfo> {
  const s = ctx.config.snapshots;
  for (const p of await removeLeftovers(s.dir))
    ctx.logger.warn('removed a partial folder left by a crash', { path: p });
  const t0 = performance.now();
  const previous = await latestSnapshot(s.dir, src.name);
  await ensureRoom(ctx, src, previous, rec);
  const roomMs = Math.round(performance.now() - t0);
  if (s.hooks.pre) {
    const env = { PGFERRY_HOOK: 'pre', PGFERRY_SOURCE: src.name, PGFERRY_SNAPSHOTS_DIR: s.dir };
    const r = await runHook(s.hooks.pre, env, s.hooks.timeoutSeconds * 1000);
    rec.hooks.pre = r;
    if (!hookSucceeded(r)) {
      throw new PgferryError('SNAPSHOT_FAILED', `pre-hook ${describeHook(r)}`, {
        hint: 'the pre-hook refused the run; fix what it reports or snapshots.hooks.pre',
      });
    }
  }
  const refresh = ctx.refreshSequences;
  const written = await writeSnapshot({
    source: src.name,
    replicaUrl: src.replicaUrl,
    dir: s.dir,
    compressionLevel: s.compressionLevel,
    parallelCopies: s.parallelCopies,
    splitTableMinBytes: splitTableMinBytes(s.splitTableMinBytes, os.availableParallelism()),
    pgBinDir: s.pgBinDir,
    previous,
    refreshSequences: refresh ? () => refresh(src.name) : undefined,
    sequenceRefreshTimeoutMs: s.sequenceRefreshTimeoutSeconds * 1000,
    logger: ctx.logger,
    tableCopyDelayMs: s.faultInjection.tableCopyDelayMs,
    now: ctx.now,
    beforePublish: async (partial, writtenFiles) => {
      const v = await verifySnapshot(partial, { onlyFiles: writtenFiles });
      if (!v.ok) throw corruptError(v);
    },
  });
  ctx.logger.debug('snapshot timings', { source: src.name, roomMs, ...written.timingsMs });
  const m = written.info.manifest;
  Object.assign(rec, {
    id: m.id,
    lsn: m.lsn,
    totalBytes: m.totalBytes,
    writtenBytes: written.bytesWritten,
    tablesWritten: written.tablesWritten,
    tablesLinked: written.tablesLinked,
  });
  if (!written.sequencesFresh && refresh)
    rec.warnings.push('sequence values are the latest known, not fresh from the agent');
  return written.info;
}

export async function runSnapshot(
  ctx: RunContext,
  src: SourceSettings,
  trigger: RunRecord['trigger'],
  /** when set, the run is recorded as skipped for this reason (e.g. the server is stopping) */
  skip?: string,
): Promise<RunOutcome> {
  const s = ctx.config.snapshots;
  const rec = newRecord(src.name, trigger, ctx.now());
  let snapshot: SnapshotInfo | null = null;
  const log = ctx.logger.child({ source: src.name, trigger });
  if (skip) {
    rec.status = 'skipped';
    rec.error = skip;
  } else if (trigger === 'schedule' && !src.snapshotsEnabled) {
    rec.status = 'skipped';
    rec.error = 'snapshots are switched off for this source (snapshots.enabled)';
  } else if (trigger === 'schedule' && !isInsideWindow(ctx.now(), s.maintenanceWindow, s.timezone)) {
    rec.status = 'skipped';
    rec.error = `outside the maintenance window ${describeWindow(s.maintenanceWindow!, s.timezone)}`;
  } else {
    let lock: RunLock | null = null;
    try {
      await checkDestination(s.dir);
      lock = RunLock.acquire(ctx.config.stateDir, `a snapshot of ${src.name}`);
      snapshot = await snapshotSteps(ctx, src, rec);
      rec.status = 'ok';
    } catch (e) {
      rec.status = 'failed';
      rec.error = describeError(e);
      rec.errorCode = isPgferryError(e) ? e.code : 'INTERNAL';
    }
    try {
      // every run that was not skipped gets the post-hook, except one the pre-hook stopped
      const stoppedByPreHook = rec.hooks.pre !== undefined && !hookSucceeded(rec.hooks.pre);
      if (!stoppedByPreHook) await postHook(ctx, src, rec, snapshot);
      if (lock && rec.status === 'ok') {
        const policy = retentionPolicy(ctx.config);
        const r = await rotate({ dir: s.dir, policy, probe: ctx.probe, logger: ctx.logger, now: ctx.now });
        rec.deleted.push(...r.deletions.map(({ source, id, reason }) => ({ source, id, reason })));
      }
    } catch (e) {
      rec.warnings.push(`rotation after the snapshot failed: ${describeError(e)}`);
    } finally {
      lock?.release();
    }
  }
  const finished = ctx.now();
  rec.finishedAt = finished.toISOString();
  rec.durationMs = finished.getTime() - Date.parse(rec.startedAt);
  await ctx.history
    .append(rec)
    .catch((e: unknown) => rec.warnings.push(`history not saved: ${describeError(e)}`));
  const fields = {
    id: rec.id,
    durationMs: rec.durationMs,
    written: rec.tablesWritten,
    linked: rec.tablesLinked,
  };
  if (rec.status === 'ok')
    log.info(`snapshot ${src.name}/${rec.id} done (${formatBytes(rec.totalBytes)})`, fields);
  else if (rec.status === 'skipped') log.info(`snapshot skipped: ${rec.error}`);
  else log.error(`snapshot failed: ${rec.error}`, { errorCode: rec.errorCode });
  for (const w of rec.warnings) log.warn(w);
  return { record: rec, snapshot };
}
