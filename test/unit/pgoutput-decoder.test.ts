/**
 * The pgoutput decoder on messages built byte by byte from the documented format (protocol versions 1
 * and 2, the latter's stream messages included):
 * https://www.postgresql.org/docs/15/protocol-logicalrep-message-formats.html
 * Real messages from a live primary are checked in test/replication/pgoutput-live.test.ts.
 */
import { PgoutputDecoder } from '../../agent/pgoutput-decoder';
import { PgferryError } from '../../shared/errors';

/** A little builder for the message formats (big-endian, zero-terminated strings). */
class Bytes {
  private parts: Buffer[] = [];
  byte(c: string | number): this {
    this.parts.push(Buffer.from([typeof c === 'string' ? c.charCodeAt(0) : c]));
    return this;
  }
  i16(v: number): this {
    const b = Buffer.alloc(2);
    b.writeInt16BE(v);
    this.parts.push(b);
    return this;
  }
  i32(v: number): this {
    const b = Buffer.alloc(4);
    b.writeInt32BE(v);
    this.parts.push(b);
    return this;
  }
  u32(v: number): this {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(v);
    this.parts.push(b);
    return this;
  }
  i64(v: bigint): this {
    const b = Buffer.alloc(8);
    b.writeBigInt64BE(v);
    this.parts.push(b);
    return this;
  }
  str(s: string): this {
    this.parts.push(Buffer.from(s, 'utf8'), Buffer.from([0]));
    return this;
  }
  /** TupleData: a string is a text value, null is 'n', 'u' (the symbol) an unchanged TOAST value */
  tuple(values: (string | null | typeof UNCHANGED)[]): this {
    this.i16(values.length);
    for (const v of values) {
      if (v === null) this.byte('n');
      else if (v === UNCHANGED) this.byte('u');
      else {
        const b = Buffer.from(v, 'utf8');
        this.byte('t').i32(b.length);
        this.parts.push(b);
      }
    }
    return this;
  }
  get buf(): Buffer {
    return Buffer.concat(this.parts);
  }
}
const UNCHANGED = Symbol('unchanged TOAST');

const msg = (tag: string) => new Bytes().byte(tag);

/** Relation: oid, namespace, name, replica identity, columns (flags, name, type oid, typmod) */
function relation(
  oid: number,
  ident: string,
  columns: { name: string; type: number; key?: boolean }[],
  name = 'items',
): Buffer {
  const m = msg('R').u32(oid).str('public').str(name).byte(ident).i16(columns.length);
  for (const c of columns)
    m.byte(c.key ? 1 : 0)
      .str(c.name)
      .u32(c.type)
      .i32(-1);
  return m.buf;
}

const ITEMS = 16386;
const COLUMNS = [
  { name: 'id', type: 23, key: true },
  { name: 'name', type: 25 },
  { name: 'payload', type: 25 },
];

function decoderWith(ident = 'd', oid = ITEMS): PgoutputDecoder {
  const d = new PgoutputDecoder();
  d.decode(relation(oid, ident, COLUMNS));
  return d;
}

describe('pgoutput decoder', () => {
  it('turns a Relation message into the relation layout, key columns flagged', () => {
    const d = new PgoutputDecoder();
    expect(d.decode(relation(ITEMS, 'i', COLUMNS))).toEqual({
      k: 'R',
      relation: {
        relid: ITEMS,
        schema: 'public',
        name: 'items',
        replicaIdentity: 'index',
        columns: [
          { name: 'id', typeOid: 23, key: true },
          { name: 'name', typeOid: 25, key: false },
          { name: 'payload', typeOid: 25, key: false },
        ],
      },
    });
    for (const [ident, word] of [
      ['d', 'default'],
      ['n', 'nothing'],
      ['f', 'full'],
    ])
      expect(d.decode(relation(1, ident, COLUMNS))).toMatchObject({ relation: { replicaIdentity: word } });
  });

  it('reads Begin and Commit: LSNs in the short form, commit time in microseconds since 1970 as text', () => {
    const d = new PgoutputDecoder();
    const begin = msg('B').u32(0).u32(0x1939990).i64(0n).u32(734).buf;
    expect(d.decode(begin)).toEqual({ k: 'B', commitLsn: '0/1939990', xid: 734 });
    // 2026-11-22 01:56:37.650953 UTC is 848,627,797,650,953 µs after 2000-01-01
    const commit = msg('C')
      .byte(0)
      .u32(0)
      .u32(0x1939990)
      .u32(0x1f)
      .u32(0x19399c0)
      .i64(848_627_797_650_953n).buf;
    expect(d.decode(commit)).toEqual({ k: 'C', endLsn: '1F/19399C0', commitTime: '1795312597650953' });
    // far from 2000 the exact value still comes out (BigInt path), also before 1970
    const far = msg('C').byte(0).i64(0n).i64(1n).i64(9_000_000_000_000_000_000n).buf;
    expect(d.decode(far)).toMatchObject({ commitTime: '9000946684800000000' });
    const early = msg('C').byte(0).i64(0n).i64(1n).i64(-946_684_800_000_001n).buf;
    expect(d.decode(early)).toMatchObject({ commitTime: '-1' });
    // xid and relation OIDs are unsigned
    expect(d.decode(msg('B').i64(1n).i64(0n).u32(0xfffffff0).buf)).toMatchObject({ xid: 0xfffffff0 });
  });

  it('reads Insert values as exact text: NULL is null, empty string stays, multi-byte text, long text', () => {
    const d = decoderWith();
    const long = 'x'.repeat(1_300_000);
    const m = msg('I').u32(ITEMS).byte('N').tuple(['1', '', 'émoji 🚀 ü']).buf;
    expect(d.decode(m)).toEqual({ k: 'I', r: ITEMS, v: ['1', '', 'émoji 🚀 ü'] });
    expect(d.decode(msg('I').u32(ITEMS).byte('N').tuple(['2', null, long]).buf)).toEqual({
      k: 'I',
      r: ITEMS,
      v: ['2', null, long],
    });
    // short values around the size where decoding switches method, ASCII and not
    for (const s of ['', '7', '12345678', '123456789', 'é', 'aé', 'abcdefgé', '\u0000x'])
      expect(d.decode(msg('I').u32(ITEMS).byte('N').tuple([s, null, null]).buf)).toMatchObject({
        v: [s, null, null],
      });
  });

  it('reports an unchanged TOAST value of an Update by column index, with identity default or index', () => {
    const d = decoderWith();
    const m = msg('U').u32(ITEMS).byte('N').tuple(['2', 'b', UNCHANGED]).buf;
    expect(d.decode(m)).toEqual({ k: 'U', r: ITEMS, v: ['2', 'b', null], toast: [2] });
  });

  it('gives the old key of an Update that changed it (K), other columns null', () => {
    const d = decoderWith();
    const m = msg('U')
      .u32(ITEMS)
      .byte('K')
      .tuple(['1', null, null])
      .byte('N')
      .tuple(['100', 'a', UNCHANGED]).buf;
    expect(d.decode(m)).toEqual({
      k: 'U',
      r: ITEMS,
      v: ['100', 'a', null],
      toast: [2],
      old: ['1', null, null],
    });
  });

  it('fills unchanged TOAST values from the whole old row (O, identity full)', () => {
    const d = decoderWith('f');
    const big = 'p'.repeat(12_800);
    const m = msg('U')
      .u32(ITEMS)
      .byte('O')
      .tuple(['1', 'one', big])
      .byte('N')
      .tuple(['1', 'uno', UNCHANGED]).buf;
    expect(d.decode(m)).toEqual({ k: 'U', r: ITEMS, v: ['1', 'uno', big], old: ['1', 'one', big] });
    // if the old row lacks it too, it stays reported as unchanged
    const both = msg('U')
      .u32(ITEMS)
      .byte('O')
      .tuple(['1', 'one', UNCHANGED])
      .byte('N')
      .tuple(['1', 'uno', UNCHANGED]).buf;
    expect(d.decode(both)).toEqual({
      k: 'U',
      r: ITEMS,
      v: ['1', 'uno', null],
      toast: [2],
      old: ['1', 'one', null],
    });
  });

  it('reads Delete with the old key (K) or the whole old row (O)', () => {
    const d = decoderWith();
    expect(d.decode(msg('D').u32(ITEMS).byte('K').tuple(['100', null, null]).buf)).toEqual({
      k: 'D',
      r: ITEMS,
      old: ['100', null, null],
    });
    expect(d.decode(msg('D').u32(ITEMS).byte('O').tuple(['1', 'uno', 'p']).buf)).toEqual({
      k: 'D',
      r: ITEMS,
      old: ['1', 'uno', 'p'],
    });
  });

  it('reads Truncate with its relations and options', () => {
    const d = new PgoutputDecoder();
    expect(d.decode(msg('T').i32(2).byte(3).u32(16386).u32(0x80000001).buf)).toEqual({
      k: 'T',
      rs: [16386, 0x80000001],
      cascade: true,
      restartIdentity: true,
    });
    expect(d.decode(msg('T').i32(1).byte(0).u32(5).buf)).toEqual({
      k: 'T',
      rs: [5],
      cascade: false,
      restartIdentity: false,
    });
  });

  it('reads past Type, Origin and logical decoding Message: nothing to apply', () => {
    const d = new PgoutputDecoder();
    expect(d.decode(msg('Y').u32(16385).str('public').str('mood').buf)).toBeNull();
    expect(d.decode(msg('O').i64(5n).str('node_a').buf)).toBeNull();
    const content = Buffer.from('hello-in-tx');
    expect(
      d.decode(Buffer.concat([msg('M').byte(1).i64(9n).str('myprefix').i32(content.length).buf, content])),
    ).toBeNull();
  });

  it('keeps relation OIDs above 2^31 positive, in the relation and in its changes', () => {
    const oid = 0x80000010;
    const d = decoderWith('d', oid);
    expect(d.decode(msg('I').u32(oid).byte('N').tuple(['1', null, null]).buf)).toMatchObject({ r: oid });
  });

  it('refuses a message cut short at any byte, with bytes left over, or of an unknown type', () => {
    const d = decoderWith('f');
    const whole = [
      msg('B').i64(1n).i64(2n).u32(3).buf,
      msg('C').byte(0).i64(1n).i64(2n).i64(3n).buf,
      relation(ITEMS, 'f', COLUMNS),
      msg('I').u32(ITEMS).byte('N').tuple(['1', 'é', null]).buf,
      msg('U').u32(ITEMS).byte('O').tuple(['1', 'a', 'b']).byte('N').tuple(['1', 'c', UNCHANGED]).buf,
      msg('D').u32(ITEMS).byte('O').tuple(['1', 'a', 'b']).buf,
      msg('T').i32(1).byte(0).u32(ITEMS).buf,
      msg('Y').u32(1).str('s').str('t').buf,
      msg('M').byte(0).i64(1n).str('p').i32(2).byte(1).byte(2).buf,
    ];
    for (const m of whole) {
      expect(() => d.decode(m)).not.toThrow();
      for (let cut = 0; cut < m.length; cut++)
        expect(() => d.decode(m.subarray(0, cut))).toThrow(PgferryError);
      expect(() => d.decode(Buffer.concat([m, Buffer.from([0])]))).toThrow(/1 bytes left over/);
    }
    expect(() => d.decode(msg('Z').i32(1).buf)).toThrow(/unknown message type 'Z'/);
  });

  it('refuses changes of a relation never announced, tuples of the wrong width, and binary values', () => {
    const d = decoderWith();
    expect(() => d.decode(msg('I').u32(99).byte('N').tuple(['1']).buf)).toThrow(
      /relation 99 was not announced/,
    );
    expect(() => d.decode(msg('I').u32(ITEMS).byte('N').tuple(['1']).buf)).toThrow(
      /a tuple of 1 columns for a relation of 3/,
    );
    const binary = msg('I').u32(ITEMS).byte('N').i16(3).byte('b').i32(1).byte(7).byte('n').byte('n').buf;
    expect(() => d.decode(binary)).toThrow(/unexpected column kind 'b'/);
    expect(() => d.decode(msg('U').u32(ITEMS).byte('X').buf)).toThrow(/expected the new tuple/);
    expect(() => d.decode(msg('D').u32(ITEMS).byte('N').buf)).toThrow(/expected the old key/);
    const negative = msg('I').u32(ITEMS).byte('N').i16(3).byte('t').i32(-5).buf;
    expect(() => d.decode(negative)).toThrow(/negative value length -5/);
  });
});

describe('pgoutput decoder, transactions streamed while in progress (protocol 2)', () => {
  const TOP = 4000000001; // above 2^31: read unsigned
  const SUB = 4000000002;
  const inBlock = (tag: string, xid: number) => msg(tag).u32(xid);

  it('reads Stream Start, changes wrapped with their (sub)transaction xid, Stream Stop, Commit', () => {
    const d = decoderWith('d');
    expect(d.decode(msg('S').u32(TOP).byte(1).buf)).toEqual({ k: 'SS', xid: TOP, first: true });
    expect(d.decode(inBlock('I', TOP).u32(ITEMS).byte('N').tuple(['1', 'a', null]).buf)).toEqual({
      k: 'SX',
      xid: TOP,
      ev: { k: 'I', r: ITEMS, v: ['1', 'a', null] },
    });
    expect(d.decode(inBlock('U', SUB).u32(ITEMS).byte('N').tuple(['1', 'b', UNCHANGED]).buf)).toEqual({
      k: 'SX',
      xid: SUB,
      ev: { k: 'U', r: ITEMS, v: ['1', 'b', null], toast: [2] },
    });
    expect(d.decode(inBlock('D', SUB).u32(ITEMS).byte('K').tuple(['1', null, null]).buf)).toEqual({
      k: 'SX',
      xid: SUB,
      ev: { k: 'D', r: ITEMS, old: ['1', null, null] },
    });
    expect(d.decode(inBlock('T', TOP).i32(1).byte(1).u32(ITEMS).buf)).toEqual({
      k: 'SX',
      xid: TOP,
      ev: { k: 'T', rs: [ITEMS], cascade: true, restartIdentity: false },
    });
    expect(d.decode(inBlock('Y', TOP).u32(1).str('s').str('t').buf)).toBeNull();
    expect(d.decode(msg('E').buf)).toEqual({ k: 'SE' });
    expect(d.decode(msg('S').u32(TOP).byte(0).buf)).toEqual({ k: 'SS', xid: TOP, first: false });
    expect(d.decode(msg('E').buf)).toEqual({ k: 'SE' });
    // Stream Commit: xid, flags, commit LSN, end LSN, commit time
    expect(
      d.decode(msg('c').u32(TOP).byte(0).i64(0x1_0000_0010n).i64(0x1_0000_0040n).i64(1_000_000n).buf),
    ).toEqual({ k: 'SC', xid: TOP, commitLsn: '1/10', endLsn: '1/40', commitTime: '946684801000000' });
  });

  it('reads Stream Abort of a transaction or a subtransaction, with or without the abort LSN and time', () => {
    const d = new PgoutputDecoder();
    expect(d.decode(msg('A').u32(TOP).u32(SUB).buf)).toEqual({ k: 'SA', xid: TOP, subxid: SUB });
    expect(d.decode(msg('A').u32(TOP).u32(TOP).i64(5n).i64(6n).buf)).toEqual({
      k: 'SA',
      xid: TOP,
      subxid: TOP,
    });
  });

  it("keeps a layout sent inside a block for that transaction's changes only, until it ends", () => {
    const d = decoderWith('d'); // committed transactions know items with 3 columns
    const wider = [...COLUMNS, { name: 'extra', type: 23 }];
    d.decode(msg('S').u32(TOP).byte(1).buf);
    const r = d.decode(Buffer.concat([inBlock('R', TOP).buf, relation(ITEMS, 'd', wider).subarray(1)]));
    expect(r).toMatchObject({ k: 'SX', xid: TOP, ev: { k: 'R', relation: { relid: ITEMS } } });
    expect(d.decode(inBlock('I', SUB).u32(ITEMS).byte('N').tuple(['1', 'a', 'b', '4']).buf)).toMatchObject({
      ev: { v: ['1', 'a', 'b', '4'] },
    });
    d.decode(msg('E').buf);
    // a committed transaction between the blocks still reads items with its 3 columns
    expect(d.decode(msg('I').u32(ITEMS).byte('N').tuple(['2', 'c', 'd']).buf)).toEqual({
      k: 'I',
      r: ITEMS,
      v: ['2', 'c', 'd'],
    });
    // the next block of the same transaction still has its own layout
    d.decode(msg('S').u32(TOP).byte(0).buf);
    expect(() => d.decode(inBlock('I', TOP).u32(ITEMS).byte('N').tuple(['3', 'e', 'f']).buf)).toThrow(
      /a tuple of 3 columns for a relation of 4/,
    );
    d.decode(msg('E').buf);
    // once it aborted, its layout is gone: a new block of another transaction reads the 3 columns
    d.decode(msg('A').u32(TOP).u32(TOP).buf);
    d.decode(
      msg('S')
        .u32(TOP + 5)
        .byte(1).buf,
    );
    expect(
      d.decode(
        inBlock('I', TOP + 5)
          .u32(ITEMS)
          .byte('N')
          .tuple(['3', 'e', 'f']).buf,
      ),
    ).toMatchObject({
      ev: { v: ['3', 'e', 'f'] },
    });
  });

  it('refuses stream messages cut short, and Begin, Commit or a nested Stream Start inside a block', () => {
    const d = decoderWith('d');
    for (const m of [
      msg('S').u32(TOP).byte(1).buf,
      msg('c').u32(TOP).byte(0).i64(1n).i64(2n).i64(3n).buf,
      msg('A').u32(TOP).u32(SUB).buf,
    ])
      for (let cut = 1; cut < m.length; cut++)
        expect(() => d.decode(m.subarray(0, cut))).toThrow(PgferryError);
    d.decode(msg('S').u32(TOP).byte(1).buf);
    const insert = inBlock('I', TOP).u32(ITEMS).byte('N').tuple(['1', 'a', null]).buf;
    for (let cut = 1; cut < insert.length; cut++)
      expect(() => d.decode(insert.subarray(0, cut))).toThrow(PgferryError);
    expect(() => d.decode(msg('B').i64(1n).i64(2n).u32(3).buf)).toThrow(
      /message type 'B' inside a stream block/,
    );
    expect(() => d.decode(msg('C').byte(0).i64(1n).i64(2n).i64(3n).buf)).toThrow(/inside a stream block/);
    expect(() => d.decode(msg('S').u32(TOP).byte(0).buf)).toThrow(/inside a stream block/);
  });
});
