/** The email hook: one plain-text mail per transition through the configured SMTP relay. */
import type { Hook } from './hook';
import { type HookPayload, hookSummary } from './hook-event';
import { sendMail } from './smtp-client';

export interface EmailSettings {
  smtpHost: string;
  smtpPort: number;
  from: string;
  to: string[];
}

export function emailText(p: HookPayload): string {
  return [
    `Source ${p.source} on backup server ${p.server} changed from ${p.previousState} to ${p.state}`,
    `at ${p.time}: ${p.reason}.`,
    '',
    `Last applied LSN: ${p.appliedLsn ?? 'none yet'}`,
    '',
    p.state === 'DEAD'
      ? 'What to do: check that the agent runs on the monitored host (systemctl status pgferry-agent) and can reach the backup server; run "pgferry status" on both.'
      : 'No action needed unless this was unexpected.',
    '',
    JSON.stringify(p, null, 2),
  ].join('\n');
}

export function emailHook(s: EmailSettings): Hook {
  return {
    kind: 'email',
    target: `smtp://${s.smtpHost}:${s.smtpPort} to ${s.to.join(', ')}`,
    run: (payload: HookPayload, signal: AbortSignal) =>
      sendMail(
        { host: s.smtpHost, port: s.smtpPort, signal },
        { from: s.from, to: s.to, subject: hookSummary(payload), text: emailText(payload) },
      ),
  };
}
