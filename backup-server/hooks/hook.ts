/** The shape of one configured hook: one attempt, which throws when it did not succeed. */
import type { HookPayload } from './hook-event';

export type HookKind = 'command' | 'webhook' | 'email';

export interface Hook {
  kind: HookKind;
  /** what the logs name: the command line, the URL, the SMTP server (never a secret) */
  target: string;
  /** one attempt; `signal` aborts it (timeout or server stop) */
  run(payload: HookPayload, signal: AbortSignal): Promise<void>;
}
