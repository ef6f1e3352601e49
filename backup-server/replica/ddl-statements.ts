/**
 * Picks the schema-changing statements out of a captured query text. The primary's event trigger records
 * the whole top-level query (`current_query()`), which may also hold DML ("CREATE TABLE t ...; INSERT INTO t
 * ..."): replaying that DML would double rows that also arrive through the stream, so only DDL is kept.
 * When a query holds no DDL statement itself (a DO block or a function call that runs DDL), the whole
 * query is kept: it is the only way to reproduce what it did.
 */
const DDL_START = /^(CREATE|ALTER|DROP|COMMENT|GRANT|REVOKE|SECURITY\s+LABEL|IMPORT\s+FOREIGN\s+SCHEMA)\b/i;

/** Splits SQL text at top-level semicolons (quotes, identifiers, dollar quotes and comments respected). */
export function splitStatements(sql: string): string[] {
  const out: string[] = [];
  let start = 0;
  let i = 0;
  const n = sql.length;
  while (i < n) {
    const ch = sql[i];
    const next = sql[i + 1];
    if (ch === "'" || ch === '"') {
      const escapes = ch === "'" && i > 0 && /[eE]/.test(sql[i - 1]) && !/\w/.test(sql[i - 2] ?? '');
      i++;
      while (i < n) {
        if (escapes && sql[i] === '\\') i += 2;
        else if (sql[i] === ch && sql[i + 1] === ch) i += 2;
        else if (sql[i] === ch) break;
        else i++;
      }
      i++;
    } else if (ch === '-' && next === '-') {
      while (i < n && sql[i] !== '\n') i++;
    } else if (ch === '/' && next === '*') {
      let depth = 1;
      i += 2;
      while (i < n && depth > 0) {
        if (sql[i] === '/' && sql[i + 1] === '*') {
          depth++;
          i += 2;
        } else if (sql[i] === '*' && sql[i + 1] === '/') {
          depth--;
          i += 2;
        } else i++;
      }
    } else if (ch === '$') {
      const m = /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.exec(sql.slice(i));
      if (m && !/\w/.test(sql[i - 1] ?? '')) {
        const end = sql.indexOf(m[0], i + m[0].length);
        i = end < 0 ? n : end + m[0].length;
      } else i++;
    } else if (ch === ';') {
      out.push(sql.slice(start, i));
      i++;
      start = i;
    } else i++;
  }
  out.push(sql.slice(start));
  return out.map((s) => s.trim()).filter((s) => s.length > 0 && !/^(--[^\n]*\n?\s*)*$/.test(s));
}

const stripLeadingComments = (s: string) => s.replace(/^(\s*(--[^\n]*(\n|$)|\/\*[\s\S]*?\*\/))*\s*/, '');

export function ddlStatements(query: string): string[] {
  const stmts = splitStatements(query);
  const ddl = stmts.filter((s) => DDL_START.test(stripLeadingComments(s)));
  return ddl.length ? ddl : stmts;
}
