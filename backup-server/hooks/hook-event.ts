/**
 * What every hook is told about a source state transition: the same fields as JSON (webhook body,
 * command stdin, email body) and as PGFERRY_* environment variables (command).
 */
import * as os from 'node:os';
import type { StateEvent } from '../source-state-tracker';

export interface HookPayload {
  /** the new state: LIVE, DEAD or CLOSE */
  state: string;
  previousState: string;
  source: string;
  /** ISO time of the transition */
  time: string;
  /** the source's last applied LSN, null before anything was applied */
  appliedLsn: string | null;
  reason: string;
  /** the backup server's host name */
  server: string;
}

export function hookPayload(e: StateEvent, server = os.hostname()): HookPayload {
  return {
    state: e.to,
    previousState: e.from,
    source: e.source,
    time: e.at,
    appliedLsn: e.appliedLsn,
    reason: e.reason,
    server,
  };
}

export function hookEnvironment(p: HookPayload): Record<string, string> {
  return {
    PGFERRY_STATE: p.state,
    PGFERRY_PREVIOUS_STATE: p.previousState,
    PGFERRY_SOURCE: p.source,
    PGFERRY_TIME: p.time,
    PGFERRY_APPLIED_LSN: p.appliedLsn ?? '',
    PGFERRY_REASON: p.reason,
    PGFERRY_SERVER: p.server,
  };
}

/** One line for subjects and logs: "pgferry: source monitoring is DEAD (was LIVE)". */
export function hookSummary(p: HookPayload): string {
  return `pgferry: source ${p.source} is ${p.state} (was ${p.previousState})`;
}
