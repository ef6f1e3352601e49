/**
 * SQL text for applying changes. Values are PostgreSQL text output and go in as quoted literals
 * (standard_conforming_strings is on in every replica session), so many statements can travel in one
 * round trip; literals are untyped, so PostgreSQL gives them the target column's type.
 */
import type { RelationInfo, Value } from '../../shared/protocol/messages';

export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

export function quoteLiteral(v: Value): string {
  if (v === null) return 'NULL';
  return `'${v.replace(/'/g, "''")}'`;
}

let relationSerial = 0;

export interface Prepared {
  name: string;
  prepare: string;
  execute: string;
}

function hashShape(shape: string): string {
  let h = 5381;
  for (let i = 0; i < shape.length; i++) h = ((h * 33) ^ shape.charCodeAt(i)) >>> 0;
  return h.toString(36);
}

const COPY_SPECIAL = /[\\\t\n\r]/;

/** Escapes a value for COPY text format: backslash, tab, newline and carriage return. */
export function copyEscape(v: string): string {
  if (!COPY_SPECIAL.test(v)) return v;
  return v.replace(/\\/g, '\\\\').replace(/\t/g, '\\t').replace(/\n/g, '\\n').replace(/\r/g, '\\r');
}

export function qualifiedName(schema: string, name: string): string {
  return `${quoteIdent(schema)}.${quoteIdent(name)}`;
}

/** The prepared pieces of one relation, built once per relation message. */
export class RelationSql {
  readonly table: string;
  readonly insertPrefix: string;
  readonly keyIndexes: number[];
  readonly full: boolean;
  private readonly cols: string[];

  /** distinguishes the prepared statements of each relation message (a new message after DDL: new names) */
  private readonly serial = ++relationSerial;
  /** columns that can't be SET (identity GENERATED ALWAYS on the replica): skipped in updates */
  private readonly fixed: Set<number>;

  constructor(
    readonly info: RelationInfo,
    generatedAlways: ReadonlySet<string> = new Set(),
  ) {
    this.table = qualifiedName(info.schema, info.name);
    this.cols = info.columns.map((c) => quoteIdent(c.name));
    this.insertPrefix = `INSERT INTO ${this.table} (${this.cols.join(', ')}) OVERRIDING SYSTEM VALUE VALUES `;
    this.fixed = new Set(info.columns.flatMap((c, i) => (generatedAlways.has(c.name) ? [i] : [])));
    this.full = info.replicaIdentity === 'full';
    this.keyIndexes = info.columns.flatMap((c, i) => (c.key ? [i] : []));
  }

  get copyStatement(): string {
    return `COPY ${this.table} (${this.cols.join(', ')}) FROM STDIN`;
  }

  /** Rows in COPY text format. */
  copyText(rows: Value[][]): string {
    let out = '';
    for (const row of rows) {
      for (let i = 0; i < row.length; i++) {
        const v = row[i];
        out += (i ? '\t' : '') + (v === null ? '\\N' : copyEscape(v));
      }
      out += '\n';
    }
    return out;
  }

  valuesTuple(v: Value[]): string {
    let s = '(';
    for (let i = 0; i < v.length; i++) s += (i ? ', ' : '') + quoteLiteral(v[i]);
    return `${s})`;
  }

  /**
   * WHERE clause locating the old row. With a key (identity default/index) `old` may be null, and then
   * the key columns of the new values are used. With identity full, `old` is the whole row and the match
   * goes by text form (works for every type, json included), limited to one physical row.
   */
  private locate(oldRow: Value[] | undefined, newRow: Value[] | undefined): string {
    if (this.full) {
      const row = oldRow ?? newRow ?? [];
      const conds = this.cols.map((c, i) =>
        row[i] === null ? `${c} IS NULL` : `${c}::text = ${quoteLiteral(row[i])}::text`,
      );
      return `ctid = (SELECT ctid FROM ${this.table} WHERE ${conds.join(' AND ') || 'true'} LIMIT 1)`;
    }
    if (this.keyIndexes.length === 0) {
      throw new Error(`table ${this.table} has no replica identity; cannot locate rows for update/delete`);
    }
    const src = oldRow ?? newRow ?? [];
    return this.keyIndexes
      .map((i) => (src[i] === null ? `${this.cols[i]} IS NULL` : `${this.cols[i]} = ${quoteLiteral(src[i])}`))
      .join(' AND ');
  }

  update(v: Value[], toast: number[] | undefined, old: Value[] | undefined): string {
    const skip = toast && toast.length ? new Set(toast) : null;
    const sets: string[] = [];
    for (let i = 0; i < v.length; i++) {
      if (skip?.has(i) || this.fixed.has(i)) continue;
      sets.push(`${this.cols[i]} = ${quoteLiteral(v[i])}`);
    }
    if (sets.length === 0) return '';
    return `UPDATE ${this.table} SET ${sets.join(', ')} WHERE ${this.locate(old, v)}`;
  }

  /** The row as a value of the table's composite type, for whole-row matching (identity full). */
  rowValue(v: Value[]): string {
    return `ROW(${v.map(quoteLiteral).join(', ')})::${this.table}`;
  }

  /**
   * Deletes many rows of an identity-full table in one scan: each listed old row removes exactly one
   * matching physical row (duplicates stay counted), matched by the row's text form.
   */
  deleteFullRows(rows: Value[][]): string {
    const vals = rows.map((r) => `((${this.rowValue(r)})::text)`).join(', ');
    return `DELETE FROM ${this.table} WHERE ctid IN (
      SELECT x.ctid FROM (SELECT t.ctid, t::text AS k, row_number() OVER (PARTITION BY t::text) AS rn FROM ${this.table} t) x
        JOIN (SELECT k, count(*) AS n FROM (VALUES ${vals}) v(k) GROUP BY k) d ON d.k = x.k
       WHERE x.rn <= d.n)`;
  }

  /**
   * Updates many rows of an identity-full table in one scan: the n-th listed copy of an old row updates
   * the n-th physical row with that content. The caller never batches an update whose old row is the new
   * row of an earlier one in the same batch.
   */
  updateFullRows(rows: { old: Value[]; v: Value[] }[]): string {
    const vals = rows.map((r) => `((${this.rowValue(r.old)})::text, ${this.rowValue(r.v)})`).join(', ');
    const sets = this.cols.flatMap((c, i) => (this.fixed.has(i) ? [] : [`${c} = (d.nv).${c}`]));
    return `WITH d AS (SELECT v.k, v.nv, row_number() OVER (PARTITION BY v.k) AS rn FROM (VALUES ${vals}) v(k, nv)),
      x AS (SELECT t.ctid AS id, t::text AS k, row_number() OVER (PARTITION BY t::text) AS rn FROM ${this.table} t)
      UPDATE ${this.table} SET ${sets.join(', ')} FROM x JOIN d ON d.k = x.k AND d.rn = x.rn WHERE ${this.table}.ctid = x.id`;
  }

  delete(old: Value[]): string {
    return `DELETE FROM ${this.table} WHERE ${this.locate(old, undefined)}`;
  }

  /**
   * Update or delete by key as a prepared statement: the replica parses and plans each shape once and
   * then only executes (`EXECUTE name(literals)` still travels many to a round trip). Null when the
   * statement cannot be keyed (identity full, a NULL key value, nothing to set).
   */
  preparedUpdate(v: Value[], toast: number[] | undefined, old: Value[] | undefined): Prepared | null {
    if (this.full || this.keyIndexes.length === 0) return null;
    const keySrc = old ?? v;
    if (this.keyIndexes.some((i) => keySrc[i] === null)) return null;
    const skip = toast?.length ? new Set(toast) : null;
    const setIdx: number[] = [];
    for (let i = 0; i < v.length; i++) if (!skip?.has(i) && !this.fixed.has(i)) setIdx.push(i);
    if (setIdx.length === 0) return null;
    const shape = setIdx.join('_');
    const name = `pgf_${this.serial}_u_${shape.length > 40 ? hashShape(shape) : shape}`;
    const sets = setIdx.map((i, n) => `${this.cols[i]} = $${n + 1}`);
    const where = this.keyIndexes.map((i, n) => `${this.cols[i]} = $${setIdx.length + n + 1}`);
    return {
      name,
      prepare: `PREPARE ${name} AS UPDATE ${this.table} SET ${sets.join(', ')} WHERE ${where.join(' AND ')}`,
      execute: `EXECUTE ${name}(${[...setIdx.map((i) => v[i]), ...this.keyIndexes.map((i) => keySrc[i])].map(quoteLiteral).join(', ')})`,
    };
  }

  /** One row's INSERT as a prepared statement (short runs; long ones go by COPY). */
  preparedInsert(v: Value[]): Prepared {
    const name = `pgf_${this.serial}_i`;
    return {
      name,
      prepare: `PREPARE ${name} AS ${this.insertPrefix}(${this.cols.map((_, i) => `$${i + 1}`).join(', ')})`,
      execute: `EXECUTE ${name}(${v.map(quoteLiteral).join(', ')})`,
    };
  }

  preparedDelete(old: Value[]): Prepared | null {
    if (this.full || this.keyIndexes.length === 0 || this.keyIndexes.some((i) => old[i] === null))
      return null;
    const name = `pgf_${this.serial}_d`;
    const where = this.keyIndexes.map((i, n) => `${this.cols[i]} = $${n + 1}`);
    return {
      name,
      prepare: `PREPARE ${name} AS DELETE FROM ${this.table} WHERE ${where.join(' AND ')}`,
      execute: `EXECUTE ${name}(${this.keyIndexes.map((i) => quoteLiteral(old[i])).join(', ')})`,
    };
  }
}
