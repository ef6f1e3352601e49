/**
 * The warnings and errors a process logged in the last 24 hours, kept in memory for status ("are there
 * errors in the log since yesterday?"). Fed by the logger's `sink`; counts since the process started
 * when that is more recent (`since` says which).
 *
 *   const recent = new RecentLog();
 *   const log = createLogger({ ...config.log, sink: recent.add });
 */
import type { LogEntry } from './log';

export interface RecentLogEntry {
  at: string;
  level: 'error' | 'warn';
  message: string;
  /** an error code when the entry carries one */
  code?: string;
  source?: string;
  error?: string;
}

export interface LogSummary {
  /** the start of the counted period: 24 h ago, or the process start if later */
  since: string;
  errors: number;
  warnings: number;
  /** the last few, newest first */
  recent: RecentLogEntry[];
}

const DAY_MS = 86_400_000;
const MAX_KEPT = 10_000;

function text(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

export class RecentLog {
  private readonly entries: RecentLogEntry[] = [];
  readonly startedAt: number;

  constructor(
    private readonly windowMs = DAY_MS,
    private readonly now: () => number = Date.now,
  ) {
    this.startedAt = now();
  }

  /** The logger sink (bound: pass it as is). */
  readonly add = (e: LogEntry): void => {
    if (e.level !== 'error' && e.level !== 'warn') return;
    const at = Date.parse(e.timestamp);
    this.entries.push({
      at: Number.isFinite(at) ? e.timestamp : new Date(this.now()).toISOString(),
      level: e.level,
      message: String(e.message),
      code: text(e.code) ?? text(e.errorCode),
      source: text(e.source),
      error: text(e.error),
    });
    if (this.entries.length > MAX_KEPT) this.entries.splice(0, this.entries.length - MAX_KEPT);
  };

  summary(last = 5): LogSummary {
    const from = this.now() - this.windowMs;
    while (this.entries.length && Date.parse(this.entries[0].at) < from) this.entries.shift();
    let errors = 0;
    for (const e of this.entries) if (e.level === 'error') errors++;
    return {
      since: new Date(Math.max(from, this.startedAt)).toISOString(),
      errors,
      warnings: this.entries.length - errors,
      recent: this.entries.slice(-last).reverse(),
    };
  }
}
