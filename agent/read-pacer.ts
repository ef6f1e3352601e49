/**
 * Read pacing on the replication connection. The walsender flushes every message as soon as it is
 * decoded, so under a steady load of small transactions each socket read brings one or two messages and
 * the agent wakes thousands of times a second (strace, pgbench -c 4: ~4,000 reads and ~7,400 epoll waits
 * a second), each wake-up costing more than the messages it brings. After a turn of the event loop whose
 * reads brought less than `fullBytes` (the primary is sending a trickle, the kernel buffer is drained),
 * reading stops for `intervalMs`: the messages wait in the kernel and arrive together. A turn that read
 * `fullBytes` or more (a bulk load) never pauses, so throughput is unchanged.
 *
 * Works on the socket's native handle (readStop / readStart), the same calls Node's own back-pressure
 * uses; a socket without them (or intervalMs 0) is left as it is. On a TLS connection the handle is the
 * TLS layer's and the pause works the same, but the socket emits one 'data' per TLS record: what waited
 * arrives in one turn of the event loop (one wake-up), still as several events.
 */
import type { Socket } from 'node:net';

interface NativeHandle {
  /** Node's own flag: true while the stream wants data (false under its back-pressure) */
  reading?: boolean;
  readStop(): number;
  readStart(): number;
}

export const FULL_TURN_BYTES = 64 * 1024;

export interface ReadPacer {
  /** Reads again at once if paused (someone is waiting for what may sit in the socket). */
  wake(): void;
  /** Removes pacing and reads again at once. */
  release(): void;
}

const NOT_PACED: ReadPacer = { wake: () => undefined, release: () => undefined };

/** Installs pacing on `socket`. */
export function paceReads(socket: Socket, intervalMs: number, fullBytes = FULL_TURN_BYTES): ReadPacer {
  const handle = (socket as unknown as { _handle?: Partial<NativeHandle> | null })._handle;
  if (intervalMs <= 0 || typeof handle?.readStop !== 'function' || typeof handle.readStart !== 'function')
    return NOT_PACED;
  const native = handle as NativeHandle;
  let turnBytes = 0;
  let deciding = false;
  let paused: NodeJS.Timeout | null = null;

  const resume = (): void => {
    if (!paused) return;
    clearTimeout(paused);
    paused = null;
    // Node's back-pressure may have stopped reading meanwhile: then it restarts reading itself
    if (!socket.destroyed && native.reading !== false) native.readStart();
  };
  const decide = (): void => {
    deciding = false;
    const small = turnBytes < fullBytes;
    turnBytes = 0;
    if (!small || paused || socket.destroyed) return;
    native.readStop();
    paused = setTimeout(resume, intervalMs);
  };
  const onData = (chunk: Buffer): void => {
    turnBytes += chunk.length;
    if (deciding) return;
    deciding = true;
    // after every read of this turn of the event loop
    setImmediate(decide);
  };
  const onClose = (): void => {
    if (paused) clearTimeout(paused);
    paused = null;
  };
  socket.on('data', onData);
  socket.once('close', onClose);
  return {
    wake: resume,
    release: () => {
      socket.off('data', onData);
      socket.off('close', onClose);
      resume();
    },
  };
}
