/**
 * Config files are read once, at the edge: YAML → zod schema → a typed, defaulted object.
 * Errors name the field and the expected form.
 */
import * as fs from 'node:fs';
import YAML from 'yaml';
import type { z } from 'zod';
import { PgferryError } from '../errors';

export function formatIssues(issues: z.core.$ZodIssue[], file: string): string {
  return issues
    .map((i) => {
      const field = i.path.length ? i.path.map(String).join('.') : '(top level)';
      return `${file}: ${field}: ${i.message}`;
    })
    .join('\n');
}

export function parseConfig<S extends z.ZodType>(schema: S, raw: unknown, file = 'config'): z.output<S> {
  const r = schema.safeParse(raw ?? {});
  if (!r.success) {
    throw new PgferryError('CONFIG_INVALID', `invalid configuration:\n${formatIssues(r.error.issues, file)}`);
  }
  return r.data;
}

export function readYamlFile(file: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new PgferryError('CONFIG_NOT_FOUND', `cannot read config file ${file}: ${(e as Error).message}`);
  }
  try {
    return YAML.parse(text);
  } catch (e) {
    throw new PgferryError('CONFIG_INVALID', `${file} is not valid YAML: ${(e as Error).message}`);
  }
}

export function loadConfigFile<S extends z.ZodType>(schema: S, file: string): z.output<S> {
  return parseConfig(schema, readYamlFile(file), file);
}

/**
 * A secret given inline, in a file, or in an environment variable (first one set wins, in that order).
 * Returns undefined when none is set.
 */
export function resolveSecret(opts: {
  value?: string;
  file?: string;
  env?: string;
  field: string;
}): string | undefined {
  if (opts.value !== undefined && opts.value !== '') return opts.value;
  if (opts.file) {
    try {
      return fs.readFileSync(opts.file, 'utf8').replace(/\r?\n$/, '');
    } catch (e) {
      throw new PgferryError(
        'SECRET_MISSING',
        `${opts.field}: cannot read secret file ${opts.file}: ${(e as Error).message}`,
      );
    }
  }
  if (opts.env && process.env[opts.env] !== undefined && process.env[opts.env] !== '')
    return process.env[opts.env];
  return undefined;
}

export function envName(prefix: string, name: string): string {
  return `${prefix}${name.toUpperCase().replace(/[^A-Z0-9]/g, '_')}`;
}
