import { PipelineBatch } from '../../backup-server/replica/pipeline-batch';

/** Reads the frontend messages of a batch back: code, then the fields each message kind holds. */
function messages(buf: Buffer): unknown[] {
  const out: unknown[] = [];
  let off = 0;
  while (off < buf.length) {
    const code = String.fromCharCode(buf[off]);
    const len = buf.readInt32BE(off + 1);
    const body = buf.subarray(off + 5, off + 1 + len);
    off += 1 + len;
    let p = 0;
    const cstr = () => {
      const end = body.indexOf(0, p);
      const s = body.toString('utf8', p, end);
      p = end + 1;
      return s;
    };
    const i16 = () => {
      const v = body.readInt16BE(p);
      p += 2;
      return v;
    };
    switch (code) {
      case 'P':
        out.push({ P: cstr(), text: cstr(), types: i16() });
        break;
      case 'B': {
        const portal = cstr();
        const stmt = cstr();
        const formats = Array.from({ length: i16() }, i16);
        const params: (string | null)[] = [];
        for (let n = i16(); n > 0; n--) {
          const l = body.readInt32BE(p);
          p += 4;
          params.push(l < 0 ? null : body.toString('utf8', p, p + l));
          if (l > 0) p += l;
        }
        out.push({ B: stmt, portal, formats, params, results: i16() });
        break;
      }
      case 'E':
        out.push({ E: cstr(), rows: body.readInt32BE(p) });
        break;
      case 'd':
        out.push({ d: body.toString('utf8') });
        break;
      default:
        expect(body.length).toBe(0);
        out.push(code);
    }
  }
  return out;
}

describe('pipelined apply batches (extended query protocol bytes)', () => {
  it('parses a named statement once per connection, binds raw text values and ends with one Sync', () => {
    const parsed = new Set<string>();
    const upd = { name: 'pgf_1_u0', text: 'UPDATE t SET v = $1 WHERE id = $2' };
    const b = new PipelineBatch(parsed, 16);
    b.execute(upd, ['1', "it's \\ 'quoted'? no: raw", 'ünï 🚀'], [1], ['1'], [0]);
    b.execute(upd, [null, '2'], [0, 1]);
    expect(b.length).toBe(2);
    expect(parsed).toEqual(new Set(['pgf_1_u0']));
    expect(messages(b.finish())).toEqual([
      { P: 'pgf_1_u0', text: upd.text, types: 0 },
      {
        B: 'pgf_1_u0',
        portal: '',
        formats: [0],
        params: ["it's \\ 'quoted'? no: raw", '1'],
        results: 0,
      },
      { E: '', rows: 0 },
      { B: 'pgf_1_u0', portal: '', formats: [0], params: [null, '2'], results: 0 },
      { E: '', rows: 0 },
      'S',
    ]);
    // the next batch on the same connection only binds
    const next = new PipelineBatch(parsed);
    next.execute(upd, ['ünï 🚀', '3']);
    expect(messages(next.finish())).toEqual([
      { B: 'pgf_1_u0', portal: '', formats: [0], params: ['ünï 🚀', '3'], results: 0 },
      { E: '', rows: 0 },
      'S',
    ]);
    expect(next.statements).toEqual([upd.text]);
  });

  it('sends a COPY run inside the batch: the statement, one CopyData in text format, CopyDone', () => {
    const b = new PipelineBatch(new Set());
    b.copyRows('COPY t (a, b) FROM STDIN', [
      ['1', null],
      ['2', 'tab\there\\ and\nnewline'],
      ['3', ''],
    ]);
    b.executeText('TRUNCATE t');
    expect(messages(b.finish())).toEqual([
      { P: '', text: 'COPY t (a, b) FROM STDIN', types: 0 },
      { B: '', portal: '', formats: [0], params: [], results: 0 },
      { E: '', rows: 0 },
      { d: '1\t\\N\n2\ttab\\there\\\\ and\\nnewline\n3\t\n' },
      'c',
      { P: '', text: 'TRUNCATE t', types: 0 },
      { B: '', portal: '', formats: [0], params: [], results: 0 },
      { E: '', rows: 0 },
      'S',
    ]);
    expect(b.statements).toEqual(['COPY t (a, b) FROM STDIN', 'TRUNCATE t']);
  });

  it('grows past its first buffer with large values', () => {
    const big = 'x'.repeat(200_000);
    const b = new PipelineBatch(new Set(), 8);
    b.executeText('SELECT $1', [big]);
    const [, bind] = messages(b.finish()) as { params?: string[] }[];
    expect(bind.params?.[0]).toBe(big);
  });
});
