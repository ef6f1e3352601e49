/** The webhook: an HTTP(S) POST of the transition as JSON; any 2xx answer is success. */
import { PgferryError } from '../../shared/errors';
import { PGFERRY_VERSION } from '../../shared/version';
import type { Hook } from './hook';
import type { HookPayload } from './hook-event';

/** The URL as logs show it: without user and password. */
export function displayUrl(url: string): string {
  try {
    const u = new URL(url);
    u.username = '';
    u.password = '';
    return u.toString();
  } catch {
    return '(invalid URL)';
  }
}

export function webhookHook(url: string): Hook {
  const target = displayUrl(url);
  return {
    kind: 'webhook',
    target,
    async run(payload: HookPayload, signal: AbortSignal): Promise<void> {
      let res: Response;
      try {
        res = await fetch(url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'user-agent': `pgferry/${PGFERRY_VERSION}` },
          body: JSON.stringify(payload),
          signal,
        });
      } catch (e) {
        const why = signal.aborted ? 'no answer in time' : ((e as Error).cause as Error | undefined)?.message;
        throw new PgferryError('HOOK_FAILED', `webhook ${target}: ${why ?? (e as Error).message}`);
      }
      const text = await res.text().catch(() => '');
      if (!res.ok)
        throw new PgferryError(
          'HOOK_FAILED',
          `webhook ${target} answered ${res.status}${text ? `: ${text.slice(0, 200)}` : ''}`,
        );
    },
  };
}
