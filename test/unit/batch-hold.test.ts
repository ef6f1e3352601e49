/**
 * When the agent sends a batch of committed transactions (agent/batch-hold.ts): the hold bounds how long a
 * transaction waits in the agent, counted from its commit on the primary once the agent has caught up.
 */
import { type HoldState, holdDecision } from '../../agent/batch-hold';

const T = 1_000_000;
const at = (s: Partial<HoldState>): HoldState => ({
  now: T,
  startedAt: T,
  firstCommitAt: T,
  more: false,
  timerSet: false,
  ...s,
});

describe('batch hold', () => {
  it('0 ms sends every commit at once', () => {
    expect(holdDecision(0, at({}))).toEqual({ send: true });
    expect(holdDecision(0, at({ more: true }))).toEqual({ send: true });
  });

  it('under a backlog keeps filling the batch until it has been filling for the hold', () => {
    // commits from long ago (a backlog), more messages queued: the commit time does not send it
    expect(holdDecision(3, at({ firstCommitAt: T - 60_000, more: true, now: T + 2 }))).toBeNull();
    expect(holdDecision(3, at({ firstCommitAt: T - 60_000, more: true, now: T + 3 }))).toEqual({
      send: true,
    });
  });

  it('once caught up, counts the hold from the primary commit of the first transaction', () => {
    // committed 2 ms ago (it waited in the paused socket): 1 ms left
    expect(holdDecision(3, at({ firstCommitAt: T - 2 }))).toEqual({ waitMs: 1 });
    // committed 3 ms ago or more: sent now, not held again
    expect(holdDecision(3, at({ firstCommitAt: T - 3 }))).toEqual({ send: true });
    expect(holdDecision(3, at({ firstCommitAt: T - 2_000 }))).toEqual({ send: true });
  });

  it('never holds longer than the hold when the primary clock is ahead', () => {
    expect(holdDecision(3, at({ firstCommitAt: T + 5_000 }))).toEqual({ waitMs: 3 });
  });

  it('sets one timer per batch and none while messages are queued', () => {
    expect(holdDecision(3, at({ timerSet: true }))).toBeNull();
    expect(holdDecision(3, at({ more: true }))).toBeNull();
  });
});
