/**
 * When a batch of committed transactions leaves the agent (agent.yaml `maxBatchDelayMs`): a pure rule,
 * asked at every commit added to the batch.
 *
 * - A batch that has been filling for `holdMs` (by the agent's clock, from its first change) is sent:
 *   under a backlog, where messages keep coming, batches stay a few ms of work each.
 * - Once everything read so far is handled (`more` false), the hold counts from the primary's commit of
 *   the batch's first transaction: a transaction that waited in the socket while reads were paused
 *   (read-pacer.ts) has used that time already. Never more than `holdMs` from now, whatever the two
 *   clocks say: a commit time ahead of the agent's clock counts as just now.
 * - Otherwise nothing: more messages are queued, or a timer is already set.
 */
export type HoldDecision = { send: true } | { waitMs: number } | null;

export interface HoldState {
  /** Date.now() at the decision */
  now: number;
  /** Date.now() when the batch's first change was added */
  startedAt: number;
  /** the primary's commit time (ms since the Unix epoch) of the batch's first transaction */
  firstCommitAt: number;
  /** more messages already read wait behind this one */
  more: boolean;
  /** a timer is already set for this batch */
  timerSet: boolean;
}

export function holdDecision(holdMs: number, s: HoldState): HoldDecision {
  if (s.now - s.startedAt >= holdMs) return { send: true };
  if (s.more || s.timerSet) return null;
  const held = Math.max(s.now - s.firstCommitAt, 0);
  return held >= holdMs ? { send: true } : { waitMs: holdMs - held };
}
