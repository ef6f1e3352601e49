/**
 * What the server process and the CLI use: take, list, verify and rotate snapshots, and run the schedule.
 * All runs (scheduled, manual, rotation) go through one mutex, and through a lock file across processes.
 *
 *   const snapshots = new SnapshotService({ config, logger, refreshSequences: (source) => ... });
 *   server.addPart(snapshots);            // start(): leftovers removed, schedule running; stop(): waits
 */
import type { ServerConfig, SourceSettings } from '../../shared/config/server-config';
import { isPgferryError, PgferryError } from '../../shared/errors';
import type { Logger } from '../../shared/log';
import { findSnapshot, listSnapshots, removeLeftovers, type SnapshotInfo } from './catalog';
import { type DiskProbe, statfsProbe } from './disk-probe';
import { type RotationResult, rotate } from './retention';
import { RunHistory, type RunRecord } from './run-history';
import { Mutex, RunLock } from './run-lock';
import { checkDestination, type RunOutcome, retentionPolicy, runSnapshot } from './run';
import { SnapshotScheduler } from './scheduler';
import { type VerifyResult, verifySnapshot } from './verify';

export interface SnapshotServiceOptions {
  config: ServerConfig;
  logger: Logger;
  /** asks the source's agent for fresh sequence values; absent or failing: the latest known are used */
  refreshSequences?: (source: string) => Promise<void>;
  /** free-space readings (tests fake them); default statfs */
  probe?: DiskProbe;
  now?: () => Date;
}

export class SnapshotService {
  readonly name = 'snapshots';
  private readonly mutex = new Mutex();
  private readonly runHistory: RunHistory;
  private scheduler: SnapshotScheduler | null = null;
  /** scheduled runs still queued behind the mutex when stop() is called are skipped */
  private stopping = false;

  constructor(private readonly opts: SnapshotServiceOptions) {
    this.runHistory = new RunHistory(opts.config.stateDir, opts.config.snapshots.historySize);
  }

  private get config(): ServerConfig {
    return this.opts.config;
  }

  private get dir(): string {
    return this.config.snapshots.dir;
  }

  sourceNames(): string[] {
    return this.config.sourceSettings.map((x) => x.name);
  }

  sourceSettings(name: string): SourceSettings {
    const s = this.config.sourceSettings.find((x) => x.name === name);
    if (!s) {
      const known = this.config.sourceSettings.map((x) => x.name).join(', ');
      throw new PgferryError('CONFIG_INVALID', `unknown source "${name}"`, {
        hint: `use one of the configured sources: ${known}`,
      });
    }
    return s;
  }

  /** Runs the whole snapshot flow for one source now; the record says ok / failed / skipped. */
  createSnapshot(source: string, trigger: RunRecord['trigger'] = 'manual'): Promise<RunOutcome> {
    const src = this.sourceSettings(source);
    return this.mutex.run(() =>
      runSnapshot(
        {
          config: this.config,
          logger: this.opts.logger,
          probe: this.opts.probe ?? statfsProbe,
          history: this.runHistory,
          refreshSequences: this.opts.refreshSequences,
          now: this.opts.now ?? (() => new Date()),
        },
        src,
        trigger,
        this.stopping && trigger === 'schedule' ? 'the server was stopping' : undefined,
      ),
    );
  }

  /** Complete snapshots, newest first. */
  list(source?: string): Promise<SnapshotInfo[]> {
    return listSnapshots(this.dir, { source });
  }

  /** Re-hashes every file of a snapshot ("ID" or "SOURCE/ID"). */
  async verify(ref: string, source?: string): Promise<VerifyResult> {
    return verifySnapshot(await findSnapshot(this.dir, ref, source));
  }

  /** Applies (or with dryRun, plans) retention and the free-space rule now. */
  rotate(opts: { dryRun?: boolean } = {}): Promise<RotationResult> {
    return this.mutex.run(async () => {
      await checkDestination(this.dir);
      const lock = RunLock.acquire(this.config.stateDir, opts.dryRun ? 'a rotation dry run' : 'a rotation');
      try {
        return await rotate({
          dir: this.dir,
          policy: retentionPolicy(this.config),
          probe: this.opts.probe ?? statfsProbe,
          logger: this.opts.logger,
          now: this.opts.now,
          dryRun: opts.dryRun,
        });
      } finally {
        lock.release();
      }
    });
  }

  /** The last runs, newest first. */
  history(): Promise<RunRecord[]> {
    return this.runHistory.read();
  }

  /** Removes partial folders left by a crash (when no other process is writing one). */
  async removeLeftovers(): Promise<string[]> {
    return this.mutex.run(async () => {
      await checkDestination(this.dir);
      const lock = RunLock.acquire(this.config.stateDir, 'a cleanup of partial snapshots');
      try {
        const removed = await removeLeftovers(this.dir);
        for (const p of removed)
          this.opts.logger.warn('removed a partial folder left by a crash', { path: p });
        return removed;
      } finally {
        lock.release();
      }
    });
  }

  /** Server start: clear leftovers, start the schedule. Never fails because the volume is missing. */
  async start(): Promise<void> {
    try {
      await this.removeLeftovers();
    } catch (e) {
      if (!isPgferryError(e)) throw e;
      this.opts.logger.warn(`snapshot leftovers not checked: ${e.message}`, { errorCode: e.code });
    }
    this.startSchedule();
  }

  startSchedule(): void {
    if (this.scheduler) return;
    this.stopping = false;
    const s = this.config.snapshots;
    this.scheduler = new SnapshotScheduler({
      sources: this.config.sourceSettings.map((x) => ({ source: x.name, schedule: x.schedule })),
      rotationSchedule: s.rotationSchedule,
      timezone: s.timezone,
      logger: this.opts.logger,
      runSnapshot: (source) => this.createSnapshot(source, 'schedule'),
      runRotation: () =>
        this.rotate().catch((e: unknown) => {
          this.opts.logger.error(`daily rotation failed: ${String(e)}`);
        }),
    });
    this.scheduler.start();
  }

  /** Stops the schedule and waits for a run in progress. */
  async stop(): Promise<void> {
    this.stopping = true;
    const s = this.scheduler;
    this.scheduler = null;
    await s?.stop();
    await this.mutex.run(async () => undefined);
  }
}
