/**
 * The product's logger (winston): JSON lines when not on a TTY (systemd, files), human lines on a TTY,
 * optional size-rotated file (log-file.ts). Fields whose name looks like a secret are always redacted.
 */
import winston from 'winston';
import { RotatingLogFile } from './log-file';

export type Logger = winston.Logger;
export type LogLevel = 'error' | 'warn' | 'info' | 'debug';

export interface LogOptions {
  level?: LogLevel;
  /** 'json' | 'human' | 'auto' (human on a TTY) */
  format?: 'json' | 'human' | 'auto';
  /** write to this file (JSON lines), rotated by size, instead of stderr */
  file?: string;
  maxFileBytes?: number;
  maxFiles?: number;
  /** extra fields on every line, e.g. { role: 'server' } */
  defaultMeta?: Record<string, unknown>;
  /** receives every entry as an object (status keeps the last warnings/errors from it) */
  sink?: (entry: LogEntry) => void;
  /** where lines go without `file` (default stderr; stdout stays free for command output such as --json) */
  stream?: NodeJS.WritableStream & { isTTY?: boolean };
}

export interface LogEntry {
  level: string;
  message: string;
  timestamp: string;
  [key: string]: unknown;
}

const SECRET_KEY = /pass(word)?|secret|token|credential|private.?key|proof/i;

export function redact(value: unknown, depth = 0): unknown {
  if (depth > 6 || value === null || typeof value !== 'object') return value;
  if (value instanceof Error) return { message: value.message, code: (value as { code?: unknown }).code };
  if (Array.isArray(value)) return value.map((v) => redact(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    out[k] = SECRET_KEY.test(k) && !/hash$/i.test(k) ? '[redacted]' : redact(v, depth + 1);
  }
  return out;
}

/** Removes the password part of connection URLs found in strings. */
export function redactUrl(text: string): string {
  return text.replace(/(\w+:\/\/[^:/@\s]+:)[^@\s]+@/g, '$1[redacted]@');
}

const redactFormat = winston.format((info) => {
  for (const key of Object.keys(info)) {
    if (key === 'level' || key === 'message') continue;
    if (SECRET_KEY.test(key) && !/hash$/i.test(key)) info[key] = '[redacted]';
    else info[key] = redact(info[key]);
  }
  if (typeof info.message === 'string') info.message = redactUrl(info.message);
  return info;
});

const ANSI_COLOUR = new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m`, 'g');

const humanFormat = winston.format.printf((info) => {
  const { level, message, timestamp, ...rest } = info as unknown as LogEntry;
  const fields = Object.entries(rest)
    .filter(([k]) => typeof k === 'string')
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ');
  const visible = level.replace(ANSI_COLOUR, '').length;
  return `${timestamp} ${level}${' '.repeat(Math.max(1, 6 - visible))}${message}${fields ? ` ${fields}` : ''}`;
});

class SinkTransport extends winston.transports.Stream {
  constructor(private readonly sink: (entry: LogEntry) => void) {
    super({ stream: process.stderr });
  }
  override log(info: LogEntry, next: () => void): void {
    try {
      this.sink({ ...info });
    } catch {
      /* a failing sink never breaks logging */
    }
    next();
  }
}

export function createLogger(opts: LogOptions = {}): Logger {
  const out = opts.stream ?? process.stderr;
  const human = opts.format === 'human' || (opts.format !== 'json' && out.isTTY === true);
  const lineFormat = !human
    ? winston.format.json()
    : out.isTTY
      ? winston.format.combine(winston.format.colorize(), humanFormat)
      : humanFormat;
  const base = winston.format.combine(winston.format.timestamp(), redactFormat());
  const transports: winston.transport[] = [];
  if (opts.file) {
    transports.push(
      new winston.transports.Stream({
        stream: new RotatingLogFile(opts.file, opts.maxFileBytes ?? 50 * 1024 * 1024, opts.maxFiles ?? 5),
        format: winston.format.json(),
      }),
    );
  } else if (opts.stream) {
    transports.push(new winston.transports.Stream({ stream: opts.stream, format: lineFormat }));
  } else {
    transports.push(
      new winston.transports.Console({
        stderrLevels: ['error', 'warn', 'info', 'debug', 'verbose', 'silly'],
        format: lineFormat,
      }),
    );
  }
  if (opts.sink) transports.push(new SinkTransport(opts.sink));
  return winston.createLogger({
    level: opts.level ?? 'info',
    format: base,
    defaultMeta: opts.defaultMeta,
    transports,
  });
}

/** A logger that drops everything (tests, library use). */
export function silentLogger(): Logger {
  return winston.createLogger({
    silent: true,
    transports: [new winston.transports.Console({ silent: true })],
  });
}
