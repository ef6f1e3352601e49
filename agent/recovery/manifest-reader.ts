/**
 * Reading a snapshot manifest that came over the network: the format version first (an unknown format is a
 * refusal, not a parse error), then every field checked, and every file path confined to the snapshot folder.
 */
import { z } from 'zod';
import { PgferryError } from '../../shared/errors';
import { MANIFEST_FILE, SNAPSHOT_ID_RE, type SnapshotManifest } from '../../shared/snapshot/manifest';
import { checkFormatVersion } from './preflight';

const sha256 = z.string().regex(/^[0-9a-f]{64}$/, 'expected 64 lowercase hex digits');
const size = z.number().int().min(0);
const relPath = z
  .string()
  .min(1)
  .refine(isSafeRelativePath, 'expected a relative path inside the snapshot folder');

const fileSchema = z.object({ file: relPath, bytes: size, sha256 });

const manifestSchema = z.object({
  formatVersion: z.number(),
  id: z.string().regex(SNAPSHOT_ID_RE, 'expected a snapshot id like 20261122T031500123Z'),
  pgferryVersion: z.string(),
  pgMajor: z.number().int().min(1),
  source: z.string().min(1),
  systemIdentifier: z.string(),
  syncId: z.string(),
  appVersion: z.string().nullable(),
  lsn: z.string(),
  startedAt: z.string(),
  finishedAt: z.string(),
  schemaHash: z.string().nullable(),
  schema: z.object({ pre: fileSchema, post: fileSchema }),
  tables: z.array(
    fileSchema.extend({
      schema: z.string().min(1),
      name: z.string().min(1),
      rows: size,
      linked: z.boolean(),
      columns: z.array(z.string().min(1)).optional(),
    }),
  ),
  sequences: z.array(
    z.object({
      schema: z.string().min(1),
      name: z.string().min(1),
      value: z.string().regex(/^-?\d{1,19}$/, 'expected an integer as text'),
      isCalled: z.boolean(),
    }),
  ),
  totalBytes: size,
});

/** No absolute paths, no "..", no backslashes or control characters, no empty segments. */
export function isSafeRelativePath(p: string): boolean {
  if (p.startsWith('/') || p.includes('\\') || p === MANIFEST_FILE) return false;
  if ([...p].some((ch) => ch.charCodeAt(0) < 0x20)) return false;
  return p.split('/').every((seg) => seg !== '' && seg !== '.' && seg !== '..');
}

/** Parses and checks a manifest; `expect` are the id and source it must carry (from the catalog). */
export function parseManifest(text: string, expect: { id: string; source: string }): SnapshotManifest {
  const where = `${expect.source}/${expect.id}/${MANIFEST_FILE}`;
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new PgferryError('SNAPSHOT_CORRUPT', `${where} is not valid JSON: ${(e as Error).message}`);
  }
  checkFormatVersion(raw, expect.id);
  const r = manifestSchema.safeParse(raw);
  if (!r.success) {
    const issues = r.error.issues.map((i) => `${i.path.map(String).join('.') || '(top)'}: ${i.message}`);
    throw new PgferryError('SNAPSHOT_CORRUPT', `${where} is malformed: ${issues.slice(0, 5).join('; ')}`);
  }
  const m: SnapshotManifest = r.data;
  if (m.id !== expect.id || m.source !== expect.source) {
    throw new PgferryError(
      'SNAPSHOT_CORRUPT',
      `${where} describes snapshot ${m.source}/${m.id}, not ${expect.source}/${expect.id}`,
    );
  }
  const files = [m.schema.pre.file, m.schema.post.file, ...m.tables.map((t) => t.file)];
  const seen = new Set<string>();
  for (const f of files) {
    if (seen.has(f)) throw new PgferryError('SNAPSHOT_CORRUPT', `${where} lists the file ${f} twice`);
    seen.add(f);
  }
  return m;
}

/** The files of a snapshot in download order: schema first, then the tables, largest first. */
export function snapshotFiles(m: SnapshotManifest): { file: string; bytes: number; sha256: string }[] {
  const tables = [...m.tables].sort((a, b) => b.bytes - a.bytes);
  return [m.schema.pre, m.schema.post, ...tables].map(({ file, bytes, sha256 }) => ({ file, bytes, sha256 }));
}
