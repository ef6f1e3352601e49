/**
 * Failed-login throttling per key (usually the remote address): after `maxFailures` failures within
 * `windowMs`, further attempts are refused until `lockMs` has passed. A success clears the key.
 */
export interface ThrottleOptions {
  maxFailures: number;
  windowMs: number;
  lockMs: number;
  now?: () => number;
}

interface Entry {
  failures: number[];
  lockedUntil: number;
}

export class LoginThrottle {
  private readonly entries = new Map<string, Entry>();
  private readonly now: () => number;

  constructor(private readonly opts: ThrottleOptions) {
    this.now = opts.now ?? Date.now;
  }

  /** Milliseconds the key must still wait, 0 when an attempt is allowed. */
  retryAfterMs(key: string): number {
    const e = this.entries.get(key);
    return e ? Math.max(0, e.lockedUntil - this.now()) : 0;
  }

  isLocked(key: string): boolean {
    return this.retryAfterMs(key) > 0;
  }

  recordFailure(key: string): void {
    const now = this.now();
    const e = this.entries.get(key) ?? { failures: [], lockedUntil: 0 };
    e.failures = e.failures.filter((t) => now - t < this.opts.windowMs);
    e.failures.push(now);
    if (e.failures.length >= this.opts.maxFailures) {
      e.lockedUntil = now + this.opts.lockMs;
      e.failures = [];
    }
    this.entries.set(key, e);
    if (this.entries.size > 10_000) this.prune(now);
  }

  recordSuccess(key: string): void {
    this.entries.delete(key);
  }

  private prune(now: number): void {
    for (const [k, e] of this.entries) {
      if (e.lockedUntil < now && e.failures.every((t) => now - t >= this.opts.windowMs))
        this.entries.delete(k);
    }
  }
}
