import { ddlStatements, splitStatements } from '../../backup-server/replica/ddl-statements';

describe('captured DDL text', () => {
  it.each([
    ['CREATE TABLE t (a int); INSERT INTO t VALUES (1)', ['CREATE TABLE t (a int)']],
    [
      "ALTER TABLE t ADD COLUMN c text DEFAULT 'a;b'; UPDATE t SET c = 'x;'",
      ["ALTER TABLE t ADD COLUMN c text DEFAULT 'a;b'"],
    ],
    [
      'CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql; SELECT f()',
      ['CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql'],
    ],
    ['/* hi; */ create index i on t (a); -- trailing; comment', ['/* hi; */ create index i on t (a)']],
    ['CREATE TABLE "we;ird" (a int)', ['CREATE TABLE "we;ird" (a int)']],
    ["SELECT E'it\\'s;'; DROP TABLE x", ['DROP TABLE x']],
    [
      "DO $b$ BEGIN EXECUTE 'CREATE TABLE y ()'; END $b$",
      ["DO $b$ BEGIN EXECUTE 'CREATE TABLE y ()'; END $b$"],
    ],
  ])('keeps only the schema-changing statements of %j', (query, expected) => {
    expect(ddlStatements(query)).toEqual(expected);
  });

  it('splits at top-level semicolons only', () => {
    expect(splitStatements("a 'x;y'; b $q$;$q$; c")).toEqual(["a 'x;y'", 'b $q$;$q$', 'c']);
  });
});
