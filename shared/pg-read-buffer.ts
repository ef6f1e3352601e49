/**
 * A socket for pg (its `stream` option) that reads into one buffer of its own instead of a new one per
 * read (net.Socket's `onread`). A COPY of hundreds of megabytes otherwise allocates a fresh buffer for
 * every socket read, and in a small Node heap that churn is what sets V8's full collections going
 * (measured on a full snapshot of pgbench -s 10: 8-13 full collections with a buffer per read, 2-5 with
 * one buffer per socket; time against `pg_dump -Fd -j 2` 1.08-1.16 -> 0.92).
 *
 * Who gets the bytes: a reader that claimed the socket's feed (CopyOut during a COPY) gets a view of the
 * buffer and must be done with it when it returns; otherwise pg gets a copy as a `'data'` event, as from
 * a plain socket. With TLS, pg reads through the TLS socket it puts on top (decrypted below JavaScript),
 * so such a connection gets the plain socket pg would have made.
 */
import * as net from 'node:net';
import type { Duplex } from 'node:stream';

/** bytes a socket read may bring at most */
export const READ_BUFFER_BYTES = 256 * 1024;

const FEED = Symbol('pgferry.readFeed');

/** The bytes of one read: valid only until the call returns (the next read overwrites them). */
export type ReadConsumer = (bytes: Buffer) => void;

export interface ReadFeed {
  consumer: ReadConsumer | null;
}

/**
 * pg's `stream` option: pg calls it with the connection's settings (`ssl` among them).
 */
export function readBufferSocket(config?: { ssl?: unknown }): Duplex {
  if (config?.ssl) return new net.Socket();
  const feed: ReadFeed = { consumer: null };
  // one buffer for the socket's life (a function here would be called again after every read)
  const memory = Buffer.allocUnsafe(READ_BUFFER_BYTES);
  const onread: net.OnReadOpts = {
    buffer: memory,
    callback: (n) => {
      const bytes = memory.subarray(0, n);
      if (feed.consumer) feed.consumer(bytes);
      else socket.emit('data', Buffer.from(bytes));
      return true;
    },
  };
  // net.Socket takes `onread` in its constructor too (its types list it for connect() only), and pg
  // connects with socket.connect(port, host)
  const socket = new net.Socket({ onread } as net.SocketConstructorOpts);
  Object.defineProperty(socket, FEED, { value: feed });
  return socket;
}

/** The feed of a socket made by readBufferSocket; null for any other socket. */
export function readFeedOf(socket: object): ReadFeed | null {
  return (socket as { [FEED]?: ReadFeed })[FEED] ?? null;
}
