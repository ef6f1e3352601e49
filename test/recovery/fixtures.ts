/**
 * Test and benchmark fixtures: a real snapshot folder made from a real database, in the format of
 * shared/snapshot/manifest.ts (schema-pre/post from pg_dump, gzip'd COPY text per table, true SHA-256s),
 * independent of the backup server's snapshot writer.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import * as zlib from 'node:zlib';
import { Client } from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import {
  type CatalogEntry,
  catalogEntry,
  formatSnapshotId,
  MANIFEST_FILE,
  MANIFEST_FORMAT_VERSION,
  type ManifestFile,
  type ManifestTable,
  type SnapshotManifest,
} from '../../shared/snapshot/manifest';
import { sqlFromPgDump } from '../../shared/pg-dump-script';
import { PG_BIN_DIR } from '../harness/cluster';

const run = promisify(execFile);

export interface FixtureOptions {
  /** the database to snapshot */
  url: string;
  /** the snapshot root; the snapshot lands in <root>/<source>/<id>/ */
  root: string;
  source?: string;
  finishedAt?: Date;
  appVersion?: string | null;
  /** override what the manifest records (refusal tests) */
  pgMajor?: number;
  formatVersion?: number;
  /** gzip level of the table files (the server's default is 1) */
  compressionLevel?: number;
  /** write each table file as two gzip members, as the snapshot writer does for tables copied in parts */
  multiMemberGzip?: boolean;
  /** also write <root>/catalog.json and <root>/<source>/catalog.json */
  catalog?: boolean;
}

export interface Fixture {
  dir: string;
  manifest: SnapshotManifest;
}

function sha256(buf: Buffer): string {
  return createHash('sha256').update(buf).digest('hex');
}

async function dumpSection(
  url: string,
  section: 'pre-data' | 'post-data',
  file: string,
): Promise<ManifestFile> {
  const { stdout } = await run(
    path.join(PG_BIN_DIR, 'pg_dump'),
    ['--schema-only', `--section=${section}`, '--no-owner', '--exclude-schema=pgferry', `--dbname=${url}`],
    { encoding: 'buffer', maxBuffer: 256 * 1024 * 1024 },
  );
  const sql = Buffer.from(sqlFromPgDump(stdout.toString('latin1')), 'latin1');
  fs.writeFileSync(file, sql);
  return { file: path.basename(file), bytes: sql.length, sha256: sha256(sql) };
}

async function copyTable(
  c: Client,
  t: { schema: string; name: string; columns: string[] },
  file: string,
  level: number,
): Promise<{ rows: number; bytes: number; sha256: string }> {
  const q = (s: string) => `"${s.replace(/"/g, '""')}"`;
  const out = c.query(copyTo(`COPY ${q(t.schema)}.${q(t.name)} (${t.columns.map(q).join(', ')}) TO STDOUT`));
  const hash = createHash('sha256');
  let bytes = 0;
  const tap = new Transform({
    transform(chunk: Buffer, _e, cb) {
      hash.update(chunk);
      bytes += chunk.length;
      cb(null, chunk);
    },
  });
  await pipeline(out, zlib.createGzip({ level }), tap, fs.createWriteStream(file));
  return { rows: out.rowCount, bytes, sha256: hash.digest('hex') };
}

/** Snapshots the database at `url` into a complete snapshot folder. */
export async function makeSnapshotFixture(opts: FixtureOptions): Promise<Fixture> {
  const source = opts.source ?? 'monitoring';
  const finishedAt = opts.finishedAt ?? new Date();
  const id = formatSnapshotId(finishedAt);
  const dir = path.join(opts.root, source, id);
  fs.mkdirSync(path.join(dir, 'tables'), { recursive: true });
  const pre = await dumpSection(opts.url, 'pre-data', path.join(dir, 'schema-pre.sql'));
  const post = await dumpSection(opts.url, 'post-data', path.join(dir, 'schema-post.sql'));
  const c = new Client({ connectionString: opts.url });
  await c.connect();
  try {
    const info = await c.query<{ v: string; sysid: string; lsn: string }>(
      `SELECT current_setting('server_version_num') AS v, system_identifier::text AS sysid,
              pg_current_wal_lsn()::text AS lsn FROM pg_control_system()`,
    );
    const rels = await c.query<{ schema: string; name: string; columns: string[] }>(
      `SELECT n.nspname AS schema, c.relname AS name,
              array_agg(a.attname::text ORDER BY a.attnum) AS columns
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
        WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgferry')
          AND n.nspname NOT LIKE 'pg\\_%'
        GROUP BY 1, 2 ORDER BY 1, 2`,
    );
    const tables: ManifestTable[] = [];
    for (const [i, t] of rels.rows.entries()) {
      const file = `tables/${String(i).padStart(4, '0')}-${`${t.schema}.${t.name}`.replace(/[^A-Za-z0-9_.-]/g, '_')}.copy.gz`;
      let r = await copyTable(c, t, path.join(dir, file), opts.compressionLevel ?? 1);
      if (opts.multiMemberGzip) r = { ...r, ...splitIntoMembers(path.join(dir, file)) };
      tables.push({
        schema: t.schema,
        name: t.name,
        rows: r.rows,
        file,
        bytes: r.bytes,
        sha256: r.sha256,
        linked: false,
        columns: t.columns,
      });
    }
    const seqs = await c.query<{ schema: string; name: string }>(
      `SELECT schemaname AS schema, sequencename AS name FROM pg_sequences
        WHERE schemaname NOT IN ('pgferry') ORDER BY 1, 2`,
    );
    const sequences = [];
    for (const s of seqs.rows) {
      const q = (x: string) => `"${x.replace(/"/g, '""')}"`;
      const v = await c.query<{ last_value: string; is_called: boolean }>(
        `SELECT last_value::text, is_called FROM ${q(s.schema)}.${q(s.name)}`,
      );
      sequences.push({
        schema: s.schema,
        name: s.name,
        value: v.rows[0].last_value,
        isCalled: v.rows[0].is_called,
      });
    }
    const manifest: SnapshotManifest = {
      formatVersion: opts.formatVersion ?? MANIFEST_FORMAT_VERSION,
      id,
      pgferryVersion: '0.1.0',
      pgMajor: opts.pgMajor ?? Math.floor(Number(info.rows[0].v) / 10000),
      source,
      systemIdentifier: info.rows[0].sysid,
      syncId: 'fixture',
      appVersion: opts.appVersion === undefined ? '1.0.0' : opts.appVersion,
      lsn: info.rows[0].lsn,
      startedAt: finishedAt.toISOString(),
      finishedAt: finishedAt.toISOString(),
      schemaHash: null,
      schema: { pre, post },
      tables,
      sequences,
      totalBytes: [pre, post, ...tables].reduce((n, f) => n + f.bytes, 0),
    };
    fs.writeFileSync(path.join(dir, MANIFEST_FILE), JSON.stringify(manifest, null, 2));
    if (opts.catalog) writeCatalogs(opts.root);
    return { dir, manifest };
  } finally {
    await c.end();
  }
}

/** Rewrites a small gzip file as two members split at a line boundary; returns its new size and SHA-256. */
function splitIntoMembers(file: string): { bytes: number; sha256: string } {
  const text = zlib.gunzipSync(fs.readFileSync(file));
  const cut = text.indexOf(10, Math.floor(text.length / 2)) + 1;
  const gz = Buffer.concat([zlib.gzipSync(text.subarray(0, cut)), zlib.gzipSync(text.subarray(cut))]);
  fs.writeFileSync(file, gz);
  return { bytes: gz.length, sha256: sha256(gz) };
}

/** catalog.json at the root (all sources) and in each source folder, newest first. */
export function writeCatalogs(root: string): void {
  const all: CatalogEntry[] = [];
  for (const source of fs.readdirSync(root)) {
    const sdir = path.join(root, source);
    if (!fs.statSync(sdir).isDirectory()) continue;
    const entries: CatalogEntry[] = [];
    for (const id of fs.readdirSync(sdir)) {
      const mf = path.join(sdir, id, MANIFEST_FILE);
      if (fs.existsSync(mf))
        entries.push(catalogEntry(JSON.parse(fs.readFileSync(mf, 'utf8')) as SnapshotManifest));
    }
    entries.sort((a, b) => b.finishedAt.localeCompare(a.finishedAt));
    fs.writeFileSync(path.join(sdir, 'catalog.json'), JSON.stringify(entries));
    all.push(...entries);
  }
  all.sort((a, b) => b.finishedAt.localeCompare(a.finishedAt));
  fs.writeFileSync(path.join(root, 'catalog.json'), JSON.stringify(all));
}

/** Flips one byte in the middle of a snapshot file (tamper test). */
export function tamperByte(file: string): void {
  const buf = fs.readFileSync(file);
  const at = Math.floor(buf.length / 2);
  buf[at] ^= 0x01;
  fs.writeFileSync(file, buf);
}

/** A small application schema with serial, identity, plain, partitioned, generated and oddly named tables. */
export const APP_SCHEMA_SQL = `
CREATE SCHEMA app;
CREATE TABLE app.customers (id serial PRIMARY KEY, name text NOT NULL UNIQUE, note text);
CREATE TABLE app.orders (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  customer_id int NOT NULL REFERENCES app.customers(id),
  total numeric(12,2), created timestamptz NOT NULL DEFAULT now(), lines jsonb);
CREATE INDEX orders_created_idx ON app.orders (created);
CREATE TABLE public.events (id bigserial PRIMARY KEY, kind text, payload jsonb, tags text[], raw bytea);
CREATE TABLE public."Odd ""Name"" table" (k int, "Value col" text);
CREATE TABLE public.measurements (id int GENERATED BY DEFAULT AS IDENTITY, d date NOT NULL, v float8,
  PRIMARY KEY (id, d)) PARTITION BY RANGE (d);
CREATE TABLE public.measurements_2026 PARTITION OF public.measurements FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
CREATE TABLE public.measurements_2027 PARTITION OF public.measurements FOR VALUES FROM ('2027-01-01') TO ('2028-01-01');
CREATE TABLE public.doubled (a int, b int GENERATED ALWAYS AS (a * 2) STORED);
CREATE SEQUENCE public.ticket_seq START 1000;
CREATE TABLE public.tickets (no int DEFAULT nextval('public.ticket_seq'), subject text);
CREATE FUNCTION app.touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.note := coalesce(NEW.note, 'new'); RETURN NEW; END $$;
CREATE TRIGGER customers_touch BEFORE INSERT ON app.customers FOR EACH ROW EXECUTE FUNCTION app.touch();
CREATE VIEW app.customer_totals AS SELECT c.name, sum(o.total) AS total FROM app.customers c JOIN app.orders o ON o.customer_id = c.id GROUP BY c.name;
`;

/** Fills the app schema with `n` customers and related rows, with awkward values (NULLs, tabs, newlines, backslashes, unicode). */
export function appDataSql(n: number): string {
  return `
INSERT INTO app.customers (name, note) SELECT 'customer ' || g, CASE WHEN g % 7 = 0 THEN NULL ELSE E'line1\\nline2\\ttab \\\\ back ü ' || g END FROM generate_series(1, ${n}) g;
INSERT INTO app.orders (customer_id, total, created, lines)
  SELECT 1 + (g % ${n}), (g * 1.25)::numeric(12,2), '2026-01-01'::timestamptz + g * interval '1 minute', jsonb_build_object('n', g, 's', 'x"y')
    FROM generate_series(1, ${n * 3}) g;
INSERT INTO public.events (kind, payload, tags, raw) SELECT 'k' || (g % 5), jsonb_build_object('g', g), ARRAY['a', 'b' || g], decode(md5(g::text), 'hex') FROM generate_series(1, ${n * 2}) g;
INSERT INTO public."Odd ""Name"" table" SELECT g, 'v' || g FROM generate_series(1, 10) g;
INSERT INTO public.measurements (d, v) SELECT '2026-06-01'::date + (g % 400), g / 3.0 FROM generate_series(1, ${n}) g;
INSERT INTO public.doubled (a) SELECT g FROM generate_series(1, 20) g;
INSERT INTO public.tickets (subject) SELECT 'ticket ' || g FROM generate_series(1, 30) g;
INSERT INTO public.tickets (no, subject) VALUES (5000, 'manual number above the sequence');
SELECT setval('app.customers_id_seq', 1, true);
`;
}
