import { bodyLength, encodeFrame, encodeFrameAround, FrameDecoder } from '../../shared/protocol/frame';

const frames = [
  { header: { tag: 'changes', items: [{ k: 'I', r: 1, v: ['1', null, "it's"] }] }, body: null },
  { header: { tag: 'copyData' }, body: Buffer.from([0, 1, 2, 3, 255]) },
  { header: { tag: 'ack', lsn: '0/16B3748' }, body: null },
];
const bytes = Buffer.concat(frames.map((f) => encodeFrame(f.header, f.body)));

describe('frame decoder', () => {
  it('decodes frames delivered whole, byte by byte, and split at every position', () => {
    const whole = new FrameDecoder(1024).push(bytes);
    expect(whole.map((f) => f.header)).toEqual(frames.map((f) => f.header));
    expect(whole[1].body).toEqual(frames[1].body);

    const d = new FrameDecoder(1024);
    const out = [];
    for (let i = 0; i < bytes.length; i++) out.push(...d.push(bytes.subarray(i, i + 1)));
    expect(out.map((f) => f.header)).toEqual(frames.map((f) => f.header));

    for (let cut = 1; cut < bytes.length; cut++) {
      const s = new FrameDecoder(1024);
      const got = [...s.push(bytes.subarray(0, cut)), ...s.push(bytes.subarray(cut))];
      expect(got.map((f) => f.header)).toEqual(frames.map((f) => f.header));
      expect(s.bufferedBytes).toBe(0);
    }
  });

  it('keeps the pieces of the frames it is told not to join, and joins the others', () => {
    const bulk = (h: { tag: string }) => h.tag === 'copyData';
    for (let cut = 1; cut < bytes.length; cut++) {
      const d = new FrameDecoder(1024, bulk);
      const got = [...d.push(bytes.subarray(0, cut)), ...d.push(bytes.subarray(cut))];
      expect(got.map((f) => f.header)).toEqual(frames.map((f) => f.header));
      expect(got[1].body).toBeNull();
      expect(Buffer.concat(got[1].parts ?? [])).toEqual(frames[1].body);
      expect(bodyLength(got[1])).toBe(5);
      expect(got[0].parts).toBeUndefined();
    }
    // received whole, the body's pieces are views of what came in, not copies
    const whole = new FrameDecoder(1024, bulk).push(bytes);
    expect(whole[1].parts?.every((p) => p.buffer === bytes.buffer)).toBe(true);
  });

  it('encodes a frame around a body in place exactly as encodeFrame does', () => {
    const body = Buffer.from([9, 8, 7, 6]);
    const buf = Buffer.concat([Buffer.alloc(40, 0xee), body]);
    const framed = encodeFrameAround(buf, 40, buf.length, { tag: 'copyData', stream: 1 });
    expect(framed).toEqual(encodeFrame({ tag: 'copyData', stream: 1 }, body));
    expect(framed.buffer).toBe(buf.buffer);
    expect(() => encodeFrameAround(buf, 10, buf.length, { tag: 'copyData', stream: 1 })).toThrow(/no room/);
  });

  it('refuses a frame above the size limit before reading it', () => {
    const head = Buffer.alloc(4);
    head.writeUInt32BE(10_000, 0);
    expect(() => new FrameDecoder(1000).push(head)).toThrow(/exceeds the limit of 1000 bytes/);
  });

  it('refuses a header that is not JSON or has no tag', () => {
    const bad = Buffer.alloc(8 + 3);
    bad.writeUInt32BE(4 + 3, 0);
    bad.writeUInt32BE(3, 4);
    bad.write('{x}', 8);
    expect(() => new FrameDecoder(1000).push(bad)).toThrow(/not JSON/);
    expect(() => new FrameDecoder(1000).push(encodeFrame({ nope: 1 }))).toThrow(/no tag/);
  });
});
