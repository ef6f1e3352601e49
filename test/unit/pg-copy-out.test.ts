import { PassThrough } from 'node:stream';
import type { Connection } from 'pg';
import { CopyOut } from '../../shared/pg-copy-out';

/** one backend message: type byte, length (counting itself), payload */
const msg = (type: string, payload: Buffer | string = Buffer.alloc(0)): Buffer => {
  const body = typeof payload === 'string' ? Buffer.from(`${payload}\0`) : payload;
  const head = Buffer.alloc(5);
  head.write(type, 0, 'latin1');
  head.writeUInt32BE(body.length + 4, 1);
  return Buffer.concat([head, body]);
};

const rows = [Buffer.from('first row'), Buffer.alloc(0), Buffer.from('x'), Buffer.alloc(300, 7)];
const copyOutResponse = msg('H', Buffer.from([1, 0, 0]));
const notice = msg('N', 'Snotice');
const tail = Buffer.concat([msg('C', 'COPY 4'), msg('Z', Buffer.from('I'))]);
const stream = Buffer.concat([
  copyOutResponse,
  msg('d', rows[0]),
  msg('d', rows[1]),
  notice,
  msg('d', rows[2]),
  msg('d', rows[3]),
  msg('c'),
  tail,
]);

/**
 * A stand-in for pg's Connection: a socket with pg's one 'data' listener, which here collects what it is
 * handed back and plays pg's part (CommandComplete, ReadyForQuery, ErrorResponse) once it has it all.
 */
function fakeConnection(copy: CopyOut, expectTail: number, error = false) {
  const socket = new PassThrough();
  const handedBack: Buffer[] = [];
  let handed = 0;
  socket.on('data', (b: Buffer) => {
    handedBack.push(b);
    handed += b.length;
    if (handed < expectTail) return;
    if (error) copy.handleError(new Error('boom'));
    else {
      copy.handleCommandComplete({ text: 'COPY 4' });
      copy.handleReadyForQuery();
    }
  });
  const queries: string[] = [];
  const connection = { stream: socket, query: (text: string) => queries.push(text) };
  return { socket, connection: connection as unknown as Connection, handedBack, queries };
}

async function run(pieces: Buffer[], chunkBytes: number, expectTail = tail.length) {
  const copy = new CopyOut('COPY t TO STDOUT', chunkBytes);
  const fake = fakeConnection(copy, expectTail);
  copy.submit(fake.connection);
  const out: Buffer[] = [];
  const done = (async () => {
    for await (const b of copy) out.push(b as Buffer);
  })();
  // copies: the reader packs rows in place in the buffers it reads (a socket's buffers are its own)
  for (const p of pieces) fake.socket.write(Buffer.from(p));
  await done;
  return { copy, out, ...fake };
}

describe('COPY TO reader', () => {
  it('packs the CopyData payloads and hands the rest of the reply back to pg, however the socket splits it', async () => {
    const want = Buffer.concat(rows);
    const whole = await run([stream], 64);
    expect(whole.queries).toEqual(['COPY t TO STDOUT']);
    expect(Buffer.concat(whole.out)).toEqual(want);
    expect(Buffer.concat(whole.handedBack)).toEqual(tail);
    expect(whole.copy.rowCount).toBe(4);
    // buffers are full (chunkBytes) except the last
    expect(whole.out.slice(0, -1).every((b) => b.length === 64)).toBe(true);

    for (let cut = 1; cut < stream.length; cut++) {
      const r = await run([stream.subarray(0, cut), stream.subarray(cut)], 100);
      expect(Buffer.concat(r.out)).toEqual(want);
      expect(Buffer.concat(r.handedBack)).toEqual(tail);
    }
    const bytewise = await run(
      Array.from(stream, (_, i) => stream.subarray(i, i + 1)),
      7,
    );
    expect(Buffer.concat(bytewise.out)).toEqual(want);
    expect(Buffer.concat(bytewise.handedBack)).toEqual(tail);
  });

  it('leaves reserveBytes free at the start of every buffer it pushes', async () => {
    const copy = new CopyOut('COPY t TO STDOUT', 50, 8);
    const fake = fakeConnection(copy, tail.length);
    copy.submit(fake.connection);
    const out: Buffer[] = [];
    const done = (async () => {
      for await (const b of copy) out.push(b as Buffer);
    })();
    fake.socket.write(Buffer.from(stream));
    await done;
    expect(out.slice(0, -1).every((b) => b.length === 58)).toBe(true);
    expect(Buffer.concat(out.map((b) => b.subarray(8)))).toEqual(Buffer.concat(rows));
  });

  it('refills the buffers its consumer gives back instead of allocating new ones', async () => {
    const many = Array.from({ length: 40 }, (_, i) => Buffer.from(`row ${i} ${'x'.repeat(i % 7)}`));
    const bytes = Buffer.concat([copyOutResponse, ...many.map((r) => msg('d', r)), msg('c'), tail]);
    const copy = new CopyOut('COPY t TO STDOUT', 32);
    const fake = fakeConnection(copy, tail.length);
    copy.submit(fake.connection);
    const seen = new Set<Buffer>();
    let pushed = 0;
    const data: Buffer[] = [];
    const done = (async () => {
      for await (const chunk of copy) {
        const b = chunk as Buffer;
        pushed++;
        seen.add(b);
        data.push(Buffer.from(b)); // the consumer's own copy: the buffer is refilled once given back
        copy.recycle(b);
      }
    })();
    // as from a socket: a few rows per read, the consumer keeping up
    for (let at = 0; at < bytes.length; at += 24) {
      fake.socket.write(Buffer.from(bytes.subarray(at, at + 24))); // packed in place: a copy
      await new Promise((r) => setImmediate(r));
    }
    await done;
    expect(Buffer.concat(data)).toEqual(Buffer.concat(many));
    expect(pushed).toBeGreaterThan(10);
    // the same few buffers go round (the last, partial one is never kept)
    expect(seen.size).toBeLessThanOrEqual(3);

    // without giving them back, every buffer is a new one
    const again = new CopyOut('COPY t TO STDOUT', 32);
    const fake2 = fakeConnection(again, tail.length);
    again.submit(fake2.connection);
    const fresh = new Set<Buffer>();
    const done2 = (async () => {
      for await (const chunk of again) fresh.add(chunk as Buffer);
    })();
    for (let at = 0; at < bytes.length; at += 24) {
      fake2.socket.write(Buffer.from(bytes.subarray(at, at + 24)));
      await new Promise((r) => setImmediate(r));
    }
    await done2;
    expect(fresh.size).toBe(pushed);
  });

  it('keeps at most a few spare buffers, none of another size, and none twice', () => {
    const copy = new CopyOut('COPY t TO STDOUT', 16, 4);
    const spare = (copy as unknown as { spare: Buffer[] }).spare;
    copy.recycle(Buffer.alloc(16)); // not one of its own size (16 + 4 reserved)
    expect(spare).toHaveLength(0);
    const twice = Buffer.alloc(20);
    copy.recycle(twice);
    copy.recycle(twice); // would hand the same memory to two chunks
    expect(spare).toEqual([twice]);
    for (let i = 0; i < 10; i++) copy.recycle(Buffer.alloc(20));
    expect(spare.length).toBe(4);
  });

  it('gives an ErrorResponse to pg whole, even when its header arrives split, and fails the stream', async () => {
    const error = Buffer.concat([msg('E', 'SERROR\0C57014\0Mcanceled\0'), msg('Z', Buffer.from('I'))]);
    const bytes = Buffer.concat([copyOutResponse, msg('d', rows[0]), error]);
    const errorAt = bytes.length - error.length;
    for (const cut of [errorAt, errorAt + 1, errorAt + 3, errorAt + 5]) {
      const copy = new CopyOut('COPY t TO STDOUT', 64);
      const fake = fakeConnection(copy, error.length, true);
      copy.submit(fake.connection);
      const out: Buffer[] = [];
      const done = (async () => {
        for await (const b of copy) out.push(b as Buffer);
      })();
      fake.socket.write(Buffer.from(bytes.subarray(0, cut)));
      fake.socket.write(Buffer.from(bytes.subarray(cut)));
      await expect(done).rejects.toThrow('boom');
      expect(Buffer.concat(fake.handedBack)).toEqual(error);
    }
  });
});
