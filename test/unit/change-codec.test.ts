import { ChangeBatchEncoder, decodeChanges, encodeChanges } from '../../shared/protocol/change-codec';
import type { Change } from '../../shared/protocol/messages';

describe('binary change batches', () => {
  it('round-trip every kind of change, NULL vs empty string, unchanged TOAST, and multi-byte text', () => {
    const items: Change[] = [
      { k: 'B', commitLsn: '0/1939990', xid: 734 },
      { k: 'I', r: 16386, v: ['1', null, '', 'émoji 🚀 and \t tab', 'x'.repeat(70000)] },
      { k: 'U', r: 16386, v: ['1', 'new', null, 'kept?'], toast: [3] },
      { k: 'U', r: 16386, v: ['2', 'b', null, 'c'], old: ['1', null, null, null] },
      { k: 'D', r: 16390, old: ['5', null] },
      { k: 'T', rs: [16386, 16390], cascade: true, restartIdentity: false },
      { k: 'C', endLsn: '0/19399C0', commitTime: '1795312597650953' },
    ];
    const decoded = decodeChanges(encodeChanges(items));
    expect(decoded).toEqual([
      items[0],
      items[1],
      { k: 'U', r: 16386, v: ['1', 'new', null, null], toast: [3] },
      items[3],
      items[4],
      items[5],
      items[6],
    ]);
  });

  it('refuses a truncated batch and an unknown kind', () => {
    const buf = encodeChanges([{ k: 'I', r: 1, v: ['abc'] }]);
    expect(() => decodeChanges(buf.subarray(0, buf.length - 1))).toThrow(/truncated/);
    expect(() => decodeChanges(Buffer.from([99]))).toThrow(/unknown change kind 99/);
  });

  it('encode exactly the bytes of the layout documented in change-codec.ts (unchanged wire format)', () => {
    const items: Change[] = [
      { k: 'B', commitLsn: '0/1939990', xid: 734 },
      { k: 'I', r: 16386, v: ['1', null, '', 'émoji 🚀', 'a'.repeat(60)] },
      { k: 'U', r: 16386, v: ['1', 'new', null, 'kept?'], toast: [3] },
      { k: 'U', r: 0x80000001, v: ['2', null], old: ['1', null] },
      { k: 'D', r: 16390, old: ['5', null] },
      { k: 'T', rs: [16386, 16390], cascade: true, restartIdentity: false },
      { k: 'C', endLsn: '0/19399C0', commitTime: '1795312597650953' },
    ];
    // made by the encoder before the incremental one (commit 247fcae)
    const golden =
      'AQAJMC8xOTM5OTkwAAAC3gIAAEACAAUAAAABMf////8AAAAAAAAAC8OpbW9qaSDwn5qAAAAAPGFhYWFhYWFhYWFhYWFhYWFhYWFhYWFh' +
      'YWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYQMAAEACAAAEAAAAATEAAAADbmV3//////////4DgAAAAQEAAgAAAAEy' +
      '/////wACAAAAATH/////BAAAQAYAAgAAAAE1/////wUAAgAAQAIAAEAGAQYACTAvMTkzOTlDMAAQMTc5NTMxMjU5NzY1MDk1Mw==';
    expect(encodeChanges(items).toString('base64')).toBe(golden);
  });

  it('build batches one change at a time: size known as it grows, take() starts the next batch', () => {
    const e = new ChangeBatchEncoder(16);
    const first: Change[] = [
      { k: 'B', commitLsn: '0/10', xid: 1 },
      { k: 'I', r: 7, v: ['x'.repeat(100_000), 'ü'.repeat(30), 'short'] },
    ];
    for (const c of first) e.add(c);
    expect(e.count).toBe(2);
    const one = e.take();
    expect(one.length).toBe(encodeChanges(first).length);
    expect(e.count).toBe(0);
    expect(e.byteLength).toBe(0);
    e.add({ k: 'C', endLsn: '0/20', commitTime: '5' });
    const two = e.take();
    // the first batch is not overwritten by the second
    expect(decodeChanges(one)).toEqual(first);
    expect(decodeChanges(two)).toEqual([{ k: 'C', endLsn: '0/20', commitTime: '5' }]);
  });
});
