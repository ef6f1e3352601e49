/** The schema fingerprint both sides compute with the same query (tables, columns, types, defaults). */
export const SCHEMA_HASH_SQL = `
SELECT md5(coalesce(string_agg(line, E'\\n' ORDER BY line), '')) AS hash FROM (
  SELECT format('%s.%s:%s:%s:%s:%s:%s:%s:%s', n.nspname, c.relname, c.relkind, a.attname,
                format_type(a.atttypid, a.atttypmod), a.attnotnull, a.attidentity, a.attgenerated,
                pg_get_expr(d.adbin, d.adrelid)) AS line
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
    LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
   WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgferry')
     AND n.nspname NOT LIKE 'pg\\_%'
) s`;
