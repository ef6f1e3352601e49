import { copyEscape, RelationSql } from '../../backup-server/replica/sql';

describe('COPY text encoding of replicated values', () => {
  it('escapes backslash, tab, newline and carriage return, and writes NULL as \\N', () => {
    expect(copyEscape('a\\b\tc\nd\re')).toBe('a\\\\b\\tc\\nd\\re');
    expect(copyEscape('\\N')).toBe('\\\\N');
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
    expect(
      r.copyText([
        ['1', null],
        ['2', ''],
      ]),
    ).toBe('1\t\\N\n2\t\n');
  });
});

describe('prepared apply statements', () => {
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

  it('keys updates by shape (set columns) and skips unchanged TOAST columns', () => {
    const r = rel('default');
    const all = r.preparedUpdate(['1', '10', 'x'], undefined, undefined);
    const noDoc = r.preparedUpdate(['1', '10', null], [2], undefined);
    expect(all?.prepare).toMatch(
      /UPDATE "public"."acc" SET "id" = \$1, "bal" = \$2, "doc" = \$3 WHERE "id" = \$4$/,
    );
    expect(all?.execute).toMatch(/\('1', '10', 'x', '1'\)$/);
    expect(noDoc?.name).not.toBe(all?.name);
    expect(noDoc?.prepare).not.toMatch(/"doc" =/);
    // a changed key: the old key locates the row
    expect(r.preparedUpdate(['2', '10', 'x'], undefined, ['1', null, null])?.execute).toMatch(
      /'2', '10', 'x', '1'\)$/,
    );
  });

  it('leaves identity-full tables and NULL keys to the literal statements', () => {
    expect(rel('full').preparedUpdate(['1', '2', '3'], undefined, ['1', '2', '3'])).toBeNull();
    expect(rel('default').preparedDelete([null, null, null])).toBeNull();
    expect(rel('default').preparedDelete(['5', null, null])?.execute).toMatch(/\('5'\)$/);
  });
});
