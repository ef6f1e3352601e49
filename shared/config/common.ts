/** Schema pieces both configs use. */
import cron from 'node-cron';
import { z } from 'zod';
import { parseBytes } from '../units';

export const port = z.number().int().min(1).max(65535);

export const bytes = z.union([z.number(), z.string()]).transform((v, ctx) => {
  try {
    return parseBytes(v);
  } catch (e) {
    ctx.addIssue({ code: 'custom', message: (e as Error).message });
    return z.NEVER;
  }
});

export const logSchema = z
  .object({
    level: z.enum(['error', 'warn', 'info', 'debug']).default('info'),
    format: z.enum(['json', 'human', 'auto']).default('auto'),
    file: z.string().optional(),
    maxFileBytes: bytes.default(50 * 1024 * 1024),
    maxFiles: z.number().int().min(1).default(5),
  })
  .prefault({});

export const httpSchema = (defaultPort: number) =>
  z
    .object({
      enabled: z.boolean().default(true),
      host: z.string().default('127.0.0.1'),
      port: port.default(defaultPort),
    })
    .prefault({});

export const cronExpression = z.string().refine((s) => cron.validate(s), {
  message: 'invalid cron expression: expected 5 or 6 fields, e.g. "0 */6 * * *"',
});

export function isValidTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

export const timeZone = z
  .string()
  .refine(isValidTimeZone, { message: 'unknown IANA time zone, e.g. "UTC" or "Europe/Berlin"' });

export const hhmm = z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, 'expected a time as HH:MM, e.g. "01:00"');

export const sourceName = z
  .string()
  .regex(
    /^[a-z][a-z0-9_-]{0,39}$/,
    'expected a lowercase name: letters, digits, "_" or "-", starting with a letter, at most 40 characters',
  );
