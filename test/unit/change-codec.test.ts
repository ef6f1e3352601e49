import { decodeChanges, encodeChanges } from '../../shared/protocol/change-codec';
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
});
