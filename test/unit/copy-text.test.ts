import { copyEscape } from '../../backup-server/replica/pipeline-batch';
import { RelationSql } from '../../backup-server/replica/sql';

describe('COPY text encoding of replicated values', () => {
  it('escapes backslash, tab, newline and carriage return', () => {
    expect(copyEscape('a\\b\tc\nd\re')).toBe('a\\\\b\\tc\\nd\\re');
    expect(copyEscape('\\N')).toBe('\\\\N');
    expect(copyEscape('plain')).toBe('plain');
  });

  it('names the table and columns quoted in the COPY statement', () => {
    const r = new RelationSql({
      relid: 1,
      schema: 'public',
      name: 't"x',
      replicaIdentity: 'default',
      columns: [
        { name: 'id', typeOid: 23, key: true },
        { name: 'v', typeOid: 25, key: false },
      ],
    });
    expect(r.copyStatement).toBe('COPY "public"."t""x" ("id", "v") FROM STDIN');
  });
});

describe('named apply statements', () => {
  const rel = (replicaIdentity: 'default' | 'full') =>
    new RelationSql({
      relid: 7,
      schema: 'public',
      name: 'acc',
      replicaIdentity,
      columns: [
        { name: 'id', typeOid: 23, key: true },
        { name: 'bal', typeOid: 23, key: false },
        { name: 'doc', typeOid: 25, key: false },
      ],
    });

  it('keys updates by shape, leaves an unchanged key out of SET and skips unchanged TOAST columns', () => {
    const r = rel('default');
    const same = r.updateByKey(undefined, false);
    expect(same?.stmt.text).toBe('UPDATE "public"."acc" SET "bal" = $1, "doc" = $2 WHERE "id" = $3');
    expect(same?.set).toEqual([1, 2]);
    expect(same?.key).toEqual([0]);
    // the same shape is the same statement
    expect(r.updateByKey(undefined, false)).toBe(same);
    const noDoc = r.updateByKey([2], false);
    expect(noDoc?.stmt.name).not.toBe(same?.stmt.name);
    expect(noDoc?.stmt.text).toBe('UPDATE "public"."acc" SET "bal" = $1 WHERE "id" = $2');
    // a changed key: every column is set and the old key locates the row
    const moved = r.updateByKey(undefined, true);
    expect(moved?.stmt.text).toBe(
      'UPDATE "public"."acc" SET "id" = $1, "bal" = $2, "doc" = $3 WHERE "id" = $4',
    );
    expect(new Set([same, noDoc, moved].map((s) => s?.stmt.name)).size).toBe(3);
  });

  it('leaves identity-full tables and NULL keys to the literal statements', () => {
    expect(rel('full').updateByKey(undefined, true)).toBeNull();
    expect(rel('full').deleteByKey()).toBeNull();
    expect(rel('default').keyUsable([null, '1', '2'])).toBe(false);
    expect(rel('default').keyUsable(['5', null, null])).toBe(true);
    expect(rel('default').deleteByKey()?.stmt.text).toBe('DELETE FROM "public"."acc" WHERE "id" = $1');
    expect(rel('default').insertStatement.text).toBe(
      'INSERT INTO "public"."acc" ("id", "bal", "doc") OVERRIDING SYSTEM VALUE VALUES ($1, $2, $3)',
    );
  });
});
