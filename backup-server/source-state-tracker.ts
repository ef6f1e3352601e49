/**
 * The server side of the source states: one machine per source fed by the replicators' link events, a
 * timer that turns silent LIVE sources DEAD, and the listeners (hooks, log, the demo's commentary) told
 * of every transition. Listeners run synchronously and must not block: hooks queue their work.
 */
import { describeError } from '../shared/errors';
import type { Logger } from '../shared/log';
import { SourceStateMachine, type SourceStateView, type StateTransition } from './source-state';

export type LinkEvent = 'message' | 'heartbeat' | 'close' | 'disconnect';

/** A transition with what the hooks are told besides. */
export interface StateEvent extends StateTransition {
  /** the source's last applied LSN at the time of the transition */
  appliedLsn: string | null;
}

export interface TrackerOptions {
  deadAfterMs: number;
  keepTransitions?: number;
  /** the source's applied LSN, for the events */
  appliedLsn: (source: string) => string | null;
  now?: () => number;
}

export class SourceStateTracker {
  private readonly machines = new Map<string, SourceStateMachine>();
  private readonly listeners: ((e: StateEvent) => void)[] = [];
  private timer: NodeJS.Timeout | null = null;
  /** when the DEAD check last ran (tests wait on it to prove that nothing happened) */
  lastCheckAt = 0;

  constructor(
    sources: string[],
    private readonly opts: TrackerOptions,
    private readonly log: Logger,
  ) {
    for (const s of sources)
      this.machines.set(
        s,
        new SourceStateMachine(s, { deadAfterMs: opts.deadAfterMs, keepTransitions: opts.keepTransitions }),
      );
  }

  private now(): number {
    return this.opts.now?.() ?? Date.now();
  }

  /** How often the DEAD check runs: a tenth of deadAfterSeconds, between 50 ms and 1 s. */
  get checkIntervalMs(): number {
    return Math.min(1000, Math.max(50, Math.floor(this.opts.deadAfterMs / 10)));
  }

  onTransition(listener: (e: StateEvent) => void): void {
    this.listeners.push(listener);
  }

  /** The replicators' callback. */
  handle(event: LinkEvent, source: string): void {
    const m = this.machines.get(source);
    if (!m) return;
    const now = this.now();
    const transition =
      event === 'heartbeat'
        ? m.heartbeat(now)
        : event === 'message'
          ? m.message(now)
          : event === 'close'
            ? m.close(now)
            : null; // a lost link alone changes nothing: DEAD follows if no heartbeat arrives in time
    this.emit(transition);
  }

  /** Runs the DEAD check once (the timer calls it). */
  check(): void {
    const now = this.now();
    for (const m of this.machines.values()) this.emit(m.check(now));
    this.lastCheckAt = now;
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.check(), this.checkIntervalMs);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  view(source: string): SourceStateView | null {
    return this.machines.get(source)?.view() ?? null;
  }

  private emit(t: StateTransition | null): void {
    if (!t) return;
    const event: StateEvent = { ...t, appliedLsn: this.opts.appliedLsn(t.source) };
    const fields = {
      source: t.source,
      from: t.from,
      to: t.to,
      reason: t.reason,
      appliedLsn: event.appliedLsn,
    };
    if (t.to === 'DEAD') this.log.warn(`source ${t.source} is DEAD`, fields);
    else this.log.info(`source ${t.source} is ${t.to}`, fields);
    for (const l of this.listeners) {
      try {
        l(event);
      } catch (e) {
        this.log.error('a source state listener failed', { source: t.source, error: describeError(e) });
      }
    }
  }
}
