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
