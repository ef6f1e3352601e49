/**
 * When a cron schedule fires next, and when it fired last, in a time zone: the snapshot part of status
 * ("next scheduled run", "is the newest snapshot older than the schedule implies?"). node-cron decides
 * whether a moment matches; this file only walks the calendar, day by day, from `now`.
 */
import cron, { type ScheduledTask } from 'node-cron';

const MAX_DAYS = 400;
const MAX_CANDIDATES = 200_000;

interface LocalParts {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
}

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(tz: string | undefined): Intl.DateTimeFormat {
  const key = tz ?? '';
  let f = formatters.get(key);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone: tz,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    formatters.set(key, f);
  }
  return f;
}

export function localParts(ms: number, tz?: string): LocalParts {
  const out: Record<string, number> = {};
  for (const p of formatter(tz).formatToParts(new Date(ms)))
    if (p.type !== 'literal') out[p.type] = Number(p.value);
  return {
    year: out.year,
    month: out.month,
    day: out.day,
    hour: out.hour % 24,
    minute: out.minute,
    second: out.second,
  };
}

function asUtc(p: LocalParts): number {
  return Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute, p.second);
}

/** The instant a local wall-clock time names in `tz` (the earlier one when ambiguous). */
export function zonedTime(p: LocalParts, tz?: string): number {
  const guess = asUtc(p);
  const offset = (ms: number) => asUtc(localParts(ms, tz)) - Math.floor(ms / 1000) * 1000;
  const first = guess - offset(guess);
  return guess - offset(first);
}

/** Midnight (local) of the day `ms` falls on, in `tz`. */
export function startOfLocalDay(ms: number, tz?: string): number {
  const p = localParts(ms, tz);
  return zonedTime({ ...p, hour: 0, minute: 0, second: 0 }, tz);
}

function withTask<T>(expression: string, tz: string | undefined, fn: (t: ScheduledTask) => T): T {
  const task = cron.createTask(expression, () => undefined, { timezone: tz });
  try {
    return fn(task);
  } finally {
    void task.destroy();
  }
}

/**
 * The matching moment nearest to `now` in direction `dir` (-1: the last one at or before now, +1: the
 * first one after now), or null when none within about a year.
 */
function walk(expression: string, tz: string | undefined, now: number, dir: -1 | 1): number | null {
  const fields = cron.parse(expression);
  const order = (xs: number[]) => [...xs].sort((a, b) => (a - b) * dir);
  const hours = order(fields.hour);
  const minutes = order(fields.minute);
  const seconds = order(fields.second);
  const today = localParts(now, tz);
  const nowTod = today.hour * 3600 + today.minute * 60 + today.second;
  return withTask(expression, tz, (task) => {
    let budget = MAX_CANDIDATES;
    days: for (let i = 0; i < MAX_DAYS; i++) {
      const d = new Date(Date.UTC(today.year, today.month - 1, today.day + dir * i));
      const day = { year: d.getUTCFullYear(), month: d.getUTCMonth() + 1, day: d.getUTCDate() };
      if (!fields.month.includes(day.month)) continue;
      for (const hour of hours)
        for (const minute of minutes)
          for (const second of seconds) {
            if (budget-- <= 0) return null;
            const tod = hour * 3600 + minute * 60 + second;
            if (i === 0 && (dir < 0 ? tod > nowTod : tod <= nowTod)) continue;
            const ts = zonedTime({ ...day, hour, minute, second }, tz);
            if (task.match(new Date(ts))) return ts;
            // the time of day is in the schedule by construction, so a miss means the day is not,
            // unless this wall-clock time does not exist (a daylight-saving gap): then try the next one
            const back = localParts(ts, tz);
            if (back.hour === hour && back.minute === minute && back.second === second) continue days;
          }
    }
    return null;
  });
}

export function previousRun(expression: string, tz: string | undefined, now: number): Date | null {
  const t = walk(expression, tz, now, -1);
  return t === null ? null : new Date(t);
}

export function nextRun(expression: string, tz: string | undefined, now: number): Date | null {
  const t = walk(expression, tz, now, 1);
  return t === null ? null : new Date(t);
}
