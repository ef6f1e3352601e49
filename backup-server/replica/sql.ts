/**
 * SQL for applying one table's changes. The hot statements (insert, update and delete by key) are named
 * statements with parameters: the replicated text values are bound as they are (pipeline-batch.ts).
 * The rest (identity-full matching, NULL keys) is SQL text with the values as quoted literals
 * (standard_conforming_strings is on in every replica session); literals are untyped, so PostgreSQL gives
 * them the target column's type.
 */
import type { RelationInfo, Value } from '../../shared/protocol/messages';
import type { NamedStatement } from './pipeline-batch';
import { qualifiedName, quoteIdent, quoteLiteral } from '../../shared/sql-ident';

export { qualifiedName, quoteIdent, quoteLiteral };

let relationSerial = 0;

/** A keyed update or delete: its named statement and which values are its parameters, in order. */
export interface KeyedStatement {
  stmt: NamedStatement;
  /** indexes of the new values that are SET (updates) */
  set: readonly number[];
  /** indexes of the key values that locate the row */
  key: readonly number[];
}

/** The prepared pieces of one relation, built once per relation message. */
export class RelationSql {
  readonly table: string;
  /** the table's schema and name as one string (same table, same key across relation messages) */
  readonly tableKey: string;
  private readonly insertPrefix: string;
  readonly keyIndexes: number[];
  readonly full: boolean;
  private readonly cols: string[];

  /** distinguishes the prepared statements of each relation message (a new message after DDL: new names) */
  private readonly serial = ++relationSerial;
  /** columns that can't be SET (identity GENERATED ALWAYS on the replica): skipped in updates */
  private readonly fixed: Set<number>;
  /** distinct keyed-update shapes seen (by unchanged TOAST columns and whether the key changed) */
  private readonly updateShapes = new Map<string, KeyedStatement | null>();
  private deleteShape: KeyedStatement | null | undefined;
  private insertShape: NamedStatement | undefined;

  constructor(
    readonly info: RelationInfo,
    generatedAlways: ReadonlySet<string> = new Set(),
  ) {
    this.table = qualifiedName(info.schema, info.name);
    this.tableKey = `${info.schema}\u0000${info.name}`;
    this.cols = info.columns.map((c) => quoteIdent(c.name));
    this.insertPrefix = `INSERT INTO ${this.table} (${this.cols.join(', ')}) OVERRIDING SYSTEM VALUE VALUES `;
    this.fixed = new Set(info.columns.flatMap((c, i) => (generatedAlways.has(c.name) ? [i] : [])));
    this.full = info.replicaIdentity === 'full';
    this.keyIndexes = info.columns.flatMap((c, i) => (c.key ? [i] : []));
  }

  get copyStatement(): string {
    return `COPY ${this.table} (${this.cols.join(', ')}) FROM STDIN`;
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

  /** Whether a keyed statement can locate the row from `keySrc` (no key value is NULL). */
  keyUsable(keySrc: readonly Value[]): boolean {
    for (const i of this.keyIndexes) if (keySrc[i] === null) return false;
    return true;
  }

  /**
   * Update by key as a named statement (parsed once per connection, then bound with the raw text values).
   * The key is taken from the old values when the key changed (`keyChanged`: the stream sent them), else
   * from the new ones, and then the key columns are not SET (they are unchanged). Null when the statement
   * cannot be keyed (identity full, no key, nothing to set): the caller falls back to `update`.
   */
  updateByKey(toast: readonly number[] | undefined, keyChanged: boolean): KeyedStatement | null {
    if (this.full || this.keyIndexes.length === 0) return null;
    const shapeKey = `${keyChanged ? 'k' : 'n'}${toast?.length ? toast.join(',') : ''}`;
    let shape = this.updateShapes.get(shapeKey);
    if (shape !== undefined) return shape;
    const skip = new Set(toast);
    const keys = new Set(this.keyIndexes);
    const settable = (i: number) => !skip.has(i) && !this.fixed.has(i);
    let set = this.cols.flatMap((_, i) => (settable(i) && (keyChanged || !keys.has(i)) ? [i] : []));
    // only key columns left (a table made of its key): set them to themselves, as the stream says
    if (set.length === 0) set = this.cols.flatMap((_, i) => (settable(i) ? [i] : []));
    if (set.length === 0) shape = null;
    else {
      const sets = set.map((i, n) => `${this.cols[i]} = $${n + 1}`);
      const where = this.keyIndexes.map((i, n) => `${this.cols[i]} = $${set.length + n + 1}`);
      shape = {
        stmt: {
          name: `pgf_${this.serial}_u${this.updateShapes.size}`,
          text: `UPDATE ${this.table} SET ${sets.join(', ')} WHERE ${where.join(' AND ')}`,
        },
        set,
        key: this.keyIndexes,
      };
    }
    this.updateShapes.set(shapeKey, shape);
    return shape;
  }

  /** Delete by key as a named statement; null when the table has no key or is identity full. */
  deleteByKey(): KeyedStatement | null {
    if (this.deleteShape === undefined) {
      this.deleteShape =
        this.full || this.keyIndexes.length === 0
          ? null
          : {
              stmt: {
                name: `pgf_${this.serial}_d`,
                text: `DELETE FROM ${this.table} WHERE ${this.keyIndexes.map((i, n) => `${this.cols[i]} = $${n + 1}`).join(' AND ')}`,
              },
              set: [],
              key: this.keyIndexes,
            };
    }
    return this.deleteShape;
  }

  /** One row's INSERT as a named statement, all values as parameters (short runs; long ones go by COPY). */
  get insertStatement(): NamedStatement {
    this.insertShape ??= {
      name: `pgf_${this.serial}_i`,
      text: `${this.insertPrefix}(${this.cols.map((_, i) => `$${i + 1}`).join(', ')})`,
    };
    return this.insertShape;
  }
}
