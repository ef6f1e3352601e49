/**
 * The optional maintenance window ("01:00"–"05:00", in the snapshot time zone or the server's local time).
 * A window whose end is before its start spans midnight; equal start and end mean the whole day.
 */
export interface MaintenanceWindow {
  start: string;
  end: string;
}

function minutesOf(hhmm: string): number {
  const [h, m] = hhmm.split(':').map(Number);
  return h * 60 + m;
}

/** Minutes since local midnight of `now` in `timeZone` (the process's zone when undefined). */
export function localMinutes(now: Date, timeZone?: string): number {
  const parts = new Intl.DateTimeFormat('en-GB', {
    timeZone,
    hour: '2-digit',
    minute: '2-digit',
    hourCycle: 'h23',
  }).formatToParts(now);
  const get = (t: string) => Number(parts.find((p) => p.type === t)?.value ?? 0);
  return get('hour') * 60 + get('minute');
}

export function isInsideWindow(now: Date, window: MaintenanceWindow | undefined, timeZone?: string): boolean {
  if (!window) return true;
  const start = minutesOf(window.start);
  const end = minutesOf(window.end);
  if (start === end) return true;
  const m = localMinutes(now, timeZone);
  return start < end ? m >= start && m < end : m >= start || m < end;
}

export function describeWindow(window: MaintenanceWindow, timeZone?: string): string {
  return `${window.start}–${window.end}${timeZone ? ` ${timeZone}` : ' server time'}`;
}
