/**
 * Runs the operator's hooks on every source state transition, detached from replication: `dispatch`
 * only queues. Each hook has its own queue (transitions reach it in order), every attempt a timeout, a
 * failed attempt is retried `retries` times with a doubling delay, and a hook that still fails is logged
 * and given up. `stop()` lets running attempts finish for a moment, then aborts them.
 *
 *   const hooks = new HookDispatcher(hooksFromConfig(config.hooks), config.hooks, log);
 *   tracker.onTransition((e) => hooks.dispatch(hookPayload(e)));
 */
import { describeError } from '../../shared/errors';
import type { Logger } from '../../shared/log';
import { commandHook } from './command-hook';
import { emailHook, type EmailSettings } from './email-hook';
import type { Hook, HookKind } from './hook';
import { type HookPayload, hookSummary } from './hook-event';
import { webhookHook } from './webhook-hook';

export interface HooksConfig {
  command?: string | string[];
  webhookUrl?: string;
  email?: EmailSettings;
  timeoutSeconds: number;
  retries: number;
  retryDelaySeconds: number;
}

export interface HookStats {
  kind: HookKind;
  target: string;
  succeeded: number;
  failed: number;
  /** attempts that failed, retried ones included */
  failedAttempts: number;
  lastError: string | null;
  lastErrorAt: string | null;
}

/** Transitions waiting per hook beyond which the oldest are dropped (a flapping link). */
const MAX_QUEUED = 100;
const MAX_RETRY_DELAY_MS = 300_000;

export function hooksFromConfig(c: HooksConfig): Hook[] {
  const hooks: Hook[] = [];
  if (c.command) hooks.push(commandHook(c.command));
  if (c.webhookUrl) hooks.push(webhookHook(c.webhookUrl));
  if (c.email) hooks.push(emailHook(c.email));
  return hooks;
}

interface Lane {
  hook: Hook;
  queue: HookPayload[];
  running: Promise<void> | null;
  stats: HookStats;
}

export class HookDispatcher {
  private readonly lanes: Lane[];
  private readonly stopping = new AbortController();

  constructor(
    hooks: Hook[],
    private readonly opts: Pick<HooksConfig, 'timeoutSeconds' | 'retries' | 'retryDelaySeconds'>,
    private readonly log: Logger,
  ) {
    this.lanes = hooks.map((hook) => ({
      hook,
      queue: [],
      running: null,
      stats: {
        kind: hook.kind,
        target: hook.target,
        succeeded: 0,
        failed: 0,
        failedAttempts: 0,
        lastError: null,
        lastErrorAt: null,
      },
    }));
  }

  stats(): HookStats[] {
    return this.lanes.map((l) => ({ ...l.stats }));
  }

  /** Queues the transition for every hook; returns at once. */
  dispatch(payload: HookPayload): void {
    if (this.stopping.signal.aborted) return;
    for (const lane of this.lanes) {
      lane.queue.push(payload);
      if (lane.queue.length > MAX_QUEUED) {
        const dropped = lane.queue.shift();
        this.log.warn('hook queue full: dropped the oldest transition', {
          hook: lane.hook.kind,
          target: lane.hook.target,
          dropped: dropped ? hookSummary(dropped) : undefined,
        });
      }
      if (!lane.running) {
        lane.running = this.drain(lane).finally(() => {
          lane.running = null;
        });
      }
    }
  }

  /** Resolves once every queued transition has been handled (tests, demo). */
  async idle(): Promise<void> {
    while (this.lanes.some((l) => l.running)) await Promise.all(this.lanes.map((l) => l.running));
  }

  /** Waits up to `graceMs` for running hooks, then aborts them and drops what is queued. */
  async stop(graceMs = 2000): Promise<void> {
    const running = Promise.all(this.lanes.map((l) => l.running));
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise<void>((r) => {
      timer = setTimeout(r, graceMs);
    });
    await Promise.race([running, grace]);
    clearTimeout(timer);
    this.stopping.abort();
    for (const l of this.lanes) l.queue.length = 0;
    await running;
  }

  private async drain(lane: Lane): Promise<void> {
    for (let p = lane.queue.shift(); p; p = lane.queue.shift()) await this.deliver(lane, p);
  }

  private async deliver(lane: Lane, p: HookPayload): Promise<void> {
    const { hook, stats } = lane;
    const attempts = this.opts.retries + 1;
    for (let attempt = 1; attempt <= attempts; attempt++) {
      if (this.stopping.signal.aborted) return;
      // an own controller and timer: AbortSignal.any() holds AbortSignal.timeout() weakly, and a
      // collected timeout signal never fires (a hanging hook then ran for its full length)
      const attemptAbort = new AbortController();
      const timer = setTimeout(() => attemptAbort.abort(), this.opts.timeoutSeconds * 1000);
      const onStop = () => attemptAbort.abort();
      this.stopping.signal.addEventListener('abort', onStop, { once: true });
      const signal = attemptAbort.signal;
      const started = Date.now();
      try {
        await hook.run(p, signal).finally(() => {
          clearTimeout(timer);
          this.stopping.signal.removeEventListener('abort', onStop);
        });
        stats.succeeded++;
        this.log.info('hook ran', {
          hook: hook.kind,
          target: hook.target,
          source: p.source,
          state: p.state,
          attempt,
          ms: Date.now() - started,
        });
        return;
      } catch (e) {
        stats.failedAttempts++;
        stats.lastError = describeError(e);
        stats.lastErrorAt = new Date().toISOString();
        const last = attempt === attempts || this.stopping.signal.aborted;
        const delayMs = Math.min(this.opts.retryDelaySeconds * 1000 * 2 ** (attempt - 1), MAX_RETRY_DELAY_MS);
        const fields = {
          hook: hook.kind,
          target: hook.target,
          source: p.source,
          state: p.state,
          attempt,
          of: attempts,
          error: describeError(e),
        };
        if (last) {
          stats.failed++;
          this.log.error('hook failed; giving up on this transition (replication is not affected)', {
            ...fields,
            code: 'HOOK_FAILED',
          });
          return;
        }
        this.log.warn('hook failed; retrying', { ...fields, retryInMs: delayMs });
        await this.sleep(delayMs);
      }
    }
  }

  private sleep(ms: number): Promise<void> {
    const signal = this.stopping.signal;
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(t);
        signal.removeEventListener('abort', done);
        resolve();
      };
      const t = setTimeout(done, ms);
      signal.addEventListener('abort', done, { once: true });
    });
  }
}
