/** The source state machine (LIVE / DEAD / CLOSE) against a fake clock, table-driven. */
import { SourceStateMachine, type SourceState } from '../../backup-server/source-state';
import { SourceStateTracker, type StateEvent } from '../../backup-server/source-state-tracker';
import { memoryLogger } from '../support/pgferry';

type Step = [at: number, what: 'heartbeat' | 'message' | 'close' | 'check', expect: SourceState];

interface Case {
  name: string;
  steps: Step[];
  /** the transitions in order, as "FROM>TO" */
  transitions: string[];
}

const DEAD_AFTER = 2000;

const cases: Case[] = [
  {
    name: 'a source stays UNKNOWN, never DEAD, until its first heartbeat',
    steps: [
      [0, 'check', 'UNKNOWN'],
      [60_000, 'check', 'UNKNOWN'],
      [60_001, 'message', 'UNKNOWN'],
      [60_002, 'heartbeat', 'LIVE'],
    ],
    transitions: ['UNKNOWN>LIVE'],
  },
  {
    name: 'LIVE turns DEAD exactly deadAfterSeconds after the last heartbeat',
    steps: [
      [0, 'heartbeat', 'LIVE'],
      [500, 'heartbeat', 'LIVE'],
      [2499, 'check', 'LIVE'],
      [2500, 'check', 'DEAD'],
      [9000, 'check', 'DEAD'],
    ],
    transitions: ['UNKNOWN>LIVE', 'LIVE>DEAD'],
  },
  {
    name: 'other messages keep a source LIVE and bring a DEAD one back',
    steps: [
      [0, 'heartbeat', 'LIVE'],
      [1500, 'message', 'LIVE'],
      [3000, 'check', 'LIVE'],
      [3500, 'check', 'DEAD'],
      [4000, 'message', 'LIVE'],
    ],
    transitions: ['UNKNOWN>LIVE', 'LIVE>DEAD', 'DEAD>LIVE'],
  },
  {
    name: 'after CLOSE missed heartbeats are ignored until a heartbeat makes it LIVE again',
    steps: [
      [0, 'heartbeat', 'LIVE'],
      [100, 'close', 'CLOSE'],
      [101, 'message', 'CLOSE'],
      [10_000, 'check', 'CLOSE'],
      [100_000, 'check', 'CLOSE'],
      [100_001, 'heartbeat', 'LIVE'],
      [102_001, 'check', 'DEAD'],
    ],
    transitions: ['UNKNOWN>LIVE', 'LIVE>CLOSE', 'CLOSE>LIVE', 'LIVE>DEAD'],
  },
  {
    name: 'a DEAD source that says it stops is CLOSE, and a second close changes nothing',
    steps: [
      [0, 'heartbeat', 'LIVE'],
      [2000, 'check', 'DEAD'],
      [2100, 'close', 'CLOSE'],
      [2200, 'close', 'CLOSE'],
    ],
    transitions: ['UNKNOWN>LIVE', 'LIVE>DEAD', 'DEAD>CLOSE'],
  },
  {
    name: 'repeated heartbeats while LIVE make no transitions',
    steps: [
      [0, 'heartbeat', 'LIVE'],
      [1000, 'heartbeat', 'LIVE'],
      [2000, 'heartbeat', 'LIVE'],
      [3000, 'check', 'LIVE'],
    ],
    transitions: ['UNKNOWN>LIVE'],
  },
];

describe('source state machine', () => {
  it.each(cases)('$name', ({ steps, transitions }) => {
    const m = new SourceStateMachine('s', { deadAfterMs: DEAD_AFTER });
    const seen: string[] = [];
    for (const [at, what, expected] of steps) {
      const t =
        what === 'heartbeat'
          ? m.heartbeat(at)
          : what === 'message'
            ? m.message(at)
            : what === 'close'
              ? m.close(at)
              : m.check(at);
      if (t) seen.push(`${t.from}>${t.to}`);
      expect(`${what}@${at}: ${m.state}`).toBe(`${what}@${at}: ${expected}`);
    }
    expect(seen).toEqual(transitions);
    expect(m.view().transitions.map((t) => `${t.from}>${t.to}`)).toEqual(transitions);
  });

  it('keeps only the last N transitions, newest last, with their times and reasons', () => {
    const m = new SourceStateMachine('s', { deadAfterMs: 1000, keepTransitions: 3 });
    for (let i = 0; i < 5; i++) {
      m.heartbeat(i * 10_000);
      m.check(i * 10_000 + 1000);
    }
    const v = m.view();
    expect(v.transitions).toHaveLength(3);
    expect(v.transitions[2]).toMatchObject({ from: 'LIVE', to: 'DEAD', at: new Date(41_000).toISOString() });
    expect(v.transitions[2].reason).toMatch(/no heartbeat for 1 s/);
    expect(v).toMatchObject({ state: 'DEAD', since: new Date(41_000).toISOString(), deadAt: null });
  });

  it('says when a LIVE source would turn DEAD', () => {
    const m = new SourceStateMachine('s', { deadAfterMs: 2000 });
    m.heartbeat(1000);
    expect(m.view()).toMatchObject({ state: 'LIVE', deadAt: new Date(3000).toISOString() });
  });
});

describe('source state tracker', () => {
  it('tells its listeners every transition with the applied LSN, and a failing listener harms nothing', () => {
    let now = 0;
    const { log, entries } = memoryLogger();
    const tracker = new SourceStateTracker(
      ['a', 'b'],
      { deadAfterMs: 2000, appliedLsn: (s) => (s === 'a' ? '0/16B3748' : null), now: () => now },
      log,
    );
    const events: StateEvent[] = [];
    tracker.onTransition(() => {
      throw new Error('listener broke');
    });
    tracker.onTransition((e) => events.push(e));
    tracker.handle('heartbeat', 'a');
    tracker.handle('heartbeat', 'unknown-source');
    now = 2500;
    tracker.check();
    tracker.handle('disconnect', 'a');
    tracker.handle('close', 'b');
    expect(events.map((e) => `${e.source}:${e.from}>${e.to}:${e.appliedLsn}`)).toEqual([
      'a:UNKNOWN>LIVE:0/16B3748',
      'a:LIVE>DEAD:0/16B3748',
      'b:UNKNOWN>CLOSE:null',
    ]);
    expect(tracker.view('a')?.state).toBe('DEAD');
    expect(tracker.lastCheckAt).toBe(2500);
    expect(entries.some((e) => e.level === 'warn' && /source a is DEAD/.test(e.message))).toBe(true);
    expect(entries.filter((e) => /listener failed/.test(e.message))).toHaveLength(3);
  });

  it('checks ten times per deadAfterSeconds, between 50 ms and 1 s', () => {
    const { log } = memoryLogger();
    const mk = (ms: number) => new SourceStateTracker([], { deadAfterMs: ms, appliedLsn: () => null }, log);
    expect([mk(100).checkIntervalMs, mk(2000).checkIntervalMs, mk(30_000).checkIntervalMs]).toEqual([
      50, 200, 1000,
    ]);
  });
});
