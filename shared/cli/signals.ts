/** Foreground run loop of a daemon command: start, wait for SIGTERM/SIGINT, stop within a deadline. */
import type { Logger } from '../log';

export async function runUntilSignal(
  log: Logger,
  start: () => Promise<void>,
  stop: () => Promise<void>,
  deadlineMs = 9000,
): Promise<void> {
  let signalled: (s: string) => void = () => undefined;
  const got = new Promise<string>((r) => {
    signalled = r;
  });
  const handler = (s: NodeJS.Signals) => signalled(s);
  process.on('SIGTERM', handler);
  process.on('SIGINT', handler);
  try {
    await start();
    const sig = await got;
    log.info('stopping', { signal: sig });
    const timer = setTimeout(() => {
      log.error('clean stop took too long; exiting', { deadlineMs });
      process.exit(1);
    }, deadlineMs);
    timer.unref();
    await stop();
    clearTimeout(timer);
  } finally {
    process.off('SIGTERM', handler);
    process.off('SIGINT', handler);
  }
}
