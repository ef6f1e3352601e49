/** SQL identifier and literal quoting for the statements agent and server build themselves (pure). */
export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** `"schema"."name"`, each part quoted. */
export function qualifiedName(schema: string, name: string): string {
  return `${quoteIdent(schema)}.${quoteIdent(name)}`;
}

/**
 * A string literal, or NULL. Assumes standard_conforming_strings (on by default since PostgreSQL 9.1, and
 * in every session pgferry opens): only the quote is doubled.
 */
export function quoteLiteral(v: string | null): string {
  if (v === null) return 'NULL';
  return `'${v.replace(/'/g, "''")}'`;
}
