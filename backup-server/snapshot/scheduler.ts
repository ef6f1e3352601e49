/**
 * The snapshot schedule: one node-cron task per source (the server-wide expression or the source's own),
 * `noOverlap`, in the configured time zone, plus the daily retention pass. `stop()` waits for a run in
 * progress to end.
 */
import cron, { type Logger as CronLogger, type ScheduledTask } from 'node-cron';
import { isValidTimeZone } from '../../shared/config/common';
import { PgferryError } from '../../shared/errors';
import type { Logger } from '../../shared/log';

export interface ScheduledSource {
  source: string;
  schedule: string;
}

export interface SchedulerOptions {
  sources: ScheduledSource[];
  /** cron expression of the daily retention pass */
  rotationSchedule: string;
  /** IANA zone; the server's local time when absent */
  timezone?: string;
  runSnapshot: (source: string) => Promise<unknown>;
  runRotation: () => Promise<unknown>;
  logger: Logger;
}

function cronLogger(log: Logger): CronLogger {
  return {
    info: (m) => log.debug(m),
    warn: (m) => log.warn(m),
    error: (m, e) => log.error(String(m), { error: e?.message }),
    debug: (m) => log.debug(String(m)),
  };
}

export class SnapshotScheduler {
  private tasks: ScheduledTask[] = [];
  private readonly running = new Set<Promise<unknown>>();
  private stopping = false;

  constructor(private readonly opts: SchedulerOptions) {
    const { timezone } = opts;
    if (timezone !== undefined && !isValidTimeZone(timezone)) {
      throw new PgferryError('CONFIG_INVALID', `snapshots.timezone: unknown time zone "${timezone}"`, {
        hint: 'use an IANA zone name, e.g. "UTC" or "Europe/Berlin"',
      });
    }
    for (const { source, schedule } of [
      ...opts.sources,
      { source: 'rotation', schedule: opts.rotationSchedule },
    ]) {
      if (!cron.validate(schedule)) {
        throw new PgferryError(
          'CONFIG_INVALID',
          `schedule of ${source}: invalid cron expression "${schedule}"`,
          {
            hint: 'use 5 fields (minute hour day month weekday) or 6 with seconds first, e.g. "0 */6 * * *"',
          },
        );
      }
    }
  }

  get isRunning(): boolean {
    return this.tasks.length > 0;
  }

  private track(job: () => Promise<unknown>): () => Promise<void> {
    return async () => {
      if (this.stopping) return;
      const p = job().catch((e: unknown) =>
        this.opts.logger.error('scheduled job failed', { error: String(e) }),
      );
      this.running.add(p);
      try {
        await p;
      } finally {
        this.running.delete(p);
      }
    };
  }

  start(): void {
    if (this.tasks.length) return;
    this.stopping = false;
    const { timezone, logger } = this.opts;
    const common = { timezone, noOverlap: true, logger: cronLogger(logger) };
    for (const { source, schedule } of this.opts.sources) {
      const task = cron.schedule(
        schedule,
        this.track(() => this.opts.runSnapshot(source)),
        { ...common, name: `snapshot-${source}` },
      );
      task.on('execution:overlap', () => {
        logger.info('scheduled snapshot not started: the previous one of this source is still running', {
          source,
        });
      });
      this.tasks.push(task);
      logger.info('snapshot schedule started', { source, schedule, next: task.getNextRun()?.toISOString() });
    }
    this.tasks.push(
      cron.schedule(
        this.opts.rotationSchedule,
        this.track(() => this.opts.runRotation()),
        { ...common, name: 'snapshot-rotation' },
      ),
    );
  }

  /** Stops firing and waits for the runs in progress. */
  async stop(): Promise<void> {
    this.stopping = true;
    const tasks = this.tasks;
    this.tasks = [];
    for (const t of tasks) {
      await t.stop();
      await t.destroy();
    }
    await Promise.allSettled([...this.running]);
  }
}
