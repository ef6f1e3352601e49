/**
 * The configuration reference in README.md, generated from the config schemas: one row per option with
 * its default. Descriptions are written by hand in the README; readme.test.ts checks that the rows match
 * the schemas (and rewrites them with PGFERRY_UPDATE_README=1, keeping the descriptions).
 */
import { z } from 'zod';
import { agentConfigSchema } from '../../shared/config/agent-config';
import { serverConfigSchema } from '../../shared/config/server-config';

export interface OptionRow {
  option: string;
  default: string;
}

interface JsonNode {
  type?: string | string[];
  properties?: Record<string, JsonNode>;
  required?: string[];
  anyOf?: JsonNode[];
  items?: JsonNode;
  default?: unknown;
}

const UNITS: [number, string][] = [
  [1024 ** 4, 'TiB'],
  [1024 ** 3, 'GiB'],
  [1024 ** 2, 'MiB'],
  [1024, 'KiB'],
];

/** 10737418240 → "10GiB": the largest binary unit that divides the value exactly. */
export function exactBytes(n: number): string {
  for (const [f, u] of UNITS) if (n >= f && n % f === 0) return `${n / f}${u}`;
  return String(n);
}

function isBytes(node: JsonNode): boolean {
  return Array.isArray(node.type) && node.type.includes('number') && node.type.includes('string');
}

function valueAt(root: unknown, option: string): unknown {
  let v: unknown = root;
  for (const part of option.split('.')) {
    const key = part.endsWith('[]') ? part.slice(0, -2) : part;
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<string, unknown>)[key];
    if (part.endsWith('[]')) v = Array.isArray(v) ? v[0] : undefined;
  }
  return v;
}

function render(node: JsonNode, found: unknown, required: boolean): string {
  if (required) return 'required';
  const value = found === undefined ? node.default : found;
  if (value === undefined) return '—';
  if (isBytes(node) && typeof value === 'number') return `\`${exactBytes(value)}\``;
  return `\`${typeof value === 'string' ? value : JSON.stringify(value)}\``;
}

function rows(schema: z.ZodType, minimal: unknown): OptionRow[] {
  const json = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as JsonNode;
  const defaults = schema.parse(minimal);
  const out: OptionRow[] = [];
  const objectOf = (n: JsonNode) => n.anyOf?.find((v) => v.properties) ?? (n.properties ? n : undefined);
  const walk = (node: JsonNode, option: string, required: boolean) => {
    const obj = objectOf(node);
    const arrayItems = node.type === 'array' && node.items?.properties ? node.items : undefined;
    if (arrayItems) return walkProperties(arrayItems, `${option}[]`);
    if (obj && obj === node) return walkProperties(obj, option);
    out.push({ option, default: render(node, valueAt(defaults, option), required) });
    if (obj) walkProperties(obj, option);
  };
  const walkProperties = (node: JsonNode, prefix: string) => {
    for (const [key, child] of Object.entries(node.properties ?? {})) {
      const required = (node.required ?? []).includes(key) && child.default === undefined;
      walk(child, prefix ? `${prefix}.${key}` : key, required);
    }
  };
  walk(json, '', false);
  return out;
}

export function serverOptionRows(): OptionRow[] {
  return rows(serverConfigSchema, { sources: [{ name: 'x' }] });
}

export function agentOptionRows(): OptionRow[] {
  return rows(agentConfigSchema, { source: { name: 'x', url: 'postgres://x' }, server: { host: 'x' } });
}
