/**
 * ftp-srv logs through a bunyan-shaped object (`log.child({...})`, `log.info(fields?, msg, ...args)`).
 * This adapter sends those records into the product's winston logger, tagged `component: "ftp"`.
 *
 * Levels: ftp-srv's `trace` is dropped (it echoes raw command lines, PASS included); its `error` records are
 * mostly client mistakes (a missing file, a refused login, a reset connection), so they become `warn`,
 * and the refusals our own file system and login produce and listener errors (logged by us) become `debug`.
 * `fatal` stays `error`.
 */
import type { Logger } from '../../shared/log';

type LogFn = (first?: unknown, ...rest: unknown[]) => void;

export interface BunyanLike {
  child(fields: Record<string, unknown>): BunyanLike;
  trace: LogFn;
  debug: LogFn;
  info: LogFn;
  warn: LogFn;
  error: LogFn;
  fatal: LogFn;
}

/** Errors whose `name` marks a deliberate refusal (not worth a warning: the caller logged it already). */
const REFUSAL_NAMES = new Set(['FtpReplyError', 'FtpLoginRefused']);
/** ftp-srv's record of a listener error: SnapshotFtpServer reports those itself (once). */
const SERVER_ERROR_MESSAGE = '[Event] error';

function isPlainObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !(x instanceof Error) && !Array.isArray(x);
}

function describe(x: unknown): string {
  if (typeof x === 'string') return x;
  if (x instanceof Error) return x.message;
  try {
    return JSON.stringify(x);
  } catch {
    return String(x);
  }
}

export function bunyanToWinston(logger: Logger, meta: Record<string, unknown> = {}): BunyanLike {
  const emit =
    (level: 'debug' | 'info' | 'warn' | 'error'): LogFn =>
    (first, ...rest) => {
      const fields: Record<string, unknown> = { component: 'ftp', ...meta };
      const words: string[] = [];
      let effective = level;
      for (const part of [first, ...rest]) {
        if (part === undefined) continue;
        if (part instanceof Error) {
          fields.error = part.message;
          if (REFUSAL_NAMES.has(part.name) && effective === 'warn') effective = 'debug';
        } else if (isPlainObject(part)) {
          Object.assign(fields, part);
        } else {
          words.push(describe(part));
        }
      }
      if (words[0] === SERVER_ERROR_MESSAGE) effective = 'debug';
      // winston reserves these keys
      delete fields.level;
      delete fields.message;
      logger.log(
        effective,
        words.join(' ') || (typeof fields.error === 'string' ? fields.error : 'ftp-srv'),
        fields,
      );
    };
  const drop: LogFn = () => undefined;
  return {
    child: (fields) => bunyanToWinston(logger, { ...meta, ...fields }),
    trace: drop,
    debug: emit('debug'),
    info: emit('info'),
    warn: emit('warn'),
    error: emit('warn'),
    fatal: emit('error'),
  };
}
