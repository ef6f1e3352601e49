/**
 * A source's state as the backup server sees it, a pure machine over a clock the caller passes in:
 *
 *   UNKNOWN  nothing heard since the server started
 *   LIVE     heartbeats arrive (any other message from the agent counts as a sign of life too)
 *   DEAD     nothing for `deadAfterMs` after LIVE
 *   CLOSE    the agent said it is stopping; silence is then expected and never turns into DEAD
 *
 * A heartbeat makes the source LIVE from any state. Other messages only bring a DEAD source back (its
 * agent is evidently running); they never end CLOSE or UNKNOWN, so the agent's last frames before it
 * stops cannot undo its CLOSE. The last `keepTransitions` transitions are kept for status.
 */
export type SourceState = 'UNKNOWN' | 'LIVE' | 'DEAD' | 'CLOSE';

export const SOURCE_STATES: readonly SourceState[] = ['UNKNOWN', 'LIVE', 'DEAD', 'CLOSE'];

export interface StateTransition {
  source: string;
  from: SourceState;
  to: SourceState;
  /** ISO time of the transition */
  at: string;
  reason: string;
}

export interface SourceStateOptions {
  deadAfterMs: number;
  /** transitions kept for status (default 20) */
  keepTransitions?: number;
}

export interface SourceStateView {
  state: SourceState;
  /** when the current state began (null while UNKNOWN) */
  since: string | null;
  /** the last heartbeat or message */
  lastSignOfLifeAt: string | null;
  /** when the source turns DEAD if nothing arrives (only while LIVE) */
  deadAt: string | null;
  /** newest last */
  transitions: StateTransition[];
}

const iso = (ms: number) => new Date(ms).toISOString();

export class SourceStateMachine {
  private current: SourceState = 'UNKNOWN';
  private since: number | null = null;
  private lastSignOfLife: number | null = null;
  private readonly kept: StateTransition[] = [];

  constructor(
    readonly source: string,
    private readonly opts: SourceStateOptions,
  ) {}

  get state(): SourceState {
    return this.current;
  }

  /** A heartbeat arrived at `now`: LIVE from any state. */
  heartbeat(now: number): StateTransition | null {
    this.lastSignOfLife = now;
    if (this.current === 'LIVE') return null;
    return this.move('LIVE', now, this.current === 'DEAD' ? 'heartbeats arrive again' : 'heartbeat received');
  }

  /** Another message arrived at `now`: a sign of life; brings DEAD back to LIVE, nothing else. */
  message(now: number): StateTransition | null {
    if (this.current === 'UNKNOWN' || this.current === 'CLOSE') return null;
    this.lastSignOfLife = now;
    return this.current === 'DEAD' ? this.move('LIVE', now, 'the agent sends again') : null;
  }

  /** The agent announced a clean stop. */
  close(now: number): StateTransition | null {
    if (this.current === 'CLOSE') return null;
    return this.move('CLOSE', now, 'the agent announced a clean stop');
  }

  /** The periodic check: LIVE turns DEAD once nothing arrived for `deadAfterMs`. */
  check(now: number): StateTransition | null {
    if (this.current !== 'LIVE' || this.lastSignOfLife === null) return null;
    if (now - this.lastSignOfLife < this.opts.deadAfterMs) return null;
    const seconds = Math.round((now - this.lastSignOfLife) / 100) / 10;
    return this.move(
      'DEAD',
      now,
      `no heartbeat for ${seconds} s (deadAfterSeconds ${this.opts.deadAfterMs / 1000})`,
    );
  }

  view(): SourceStateView {
    const deadAt =
      this.current === 'LIVE' && this.lastSignOfLife !== null
        ? iso(this.lastSignOfLife + this.opts.deadAfterMs)
        : null;
    return {
      state: this.current,
      since: this.since === null ? null : iso(this.since),
      lastSignOfLifeAt: this.lastSignOfLife === null ? null : iso(this.lastSignOfLife),
      deadAt,
      transitions: [...this.kept],
    };
  }

  private move(to: SourceState, now: number, reason: string): StateTransition {
    const t: StateTransition = { source: this.source, from: this.current, to, at: iso(now), reason };
    this.current = to;
    this.since = now;
    this.kept.push(t);
    const keep = this.opts.keepTransitions ?? 20;
    if (this.kept.length > keep) this.kept.splice(0, this.kept.length - keep);
    return t;
  }
}
