/**
 * `COPY ... TO STDOUT` read straight off the connection's socket. PostgreSQL sends one CopyData message
 * per row; instead of an object per row (pg's parser, pg-copy-streams), the payloads are copied into
 * buffers of `chunkBytes` and each full buffer is pushed once. Back-pressure: the socket is read only while
 * the consumer wants more. After CopyDone (or at an ErrorResponse) the socket goes back to pg, which reads
 * the rest of the reply; the stream ends at ReadyForQuery, so a stream that ended is a COPY that succeeded.
 */
import { Readable } from 'node:stream';
import type { Connection, Submittable } from 'pg';
import { type ReadFeed, readFeedOf } from './pg-read-buffer';

const COPY_DATA = 0x64; // 'd'
const COPY_DONE = 0x63; // 'c'
const ERROR_RESPONSE = 0x45; // 'E'
/** messages the backend may send during COPY OUT besides CopyData: skipped */
const SKIPPED = new Set([
  0x48, // 'H' CopyOutResponse
  0x4e, // 'N' NoticeResponse
  0x53, // 'S' ParameterStatus
  0x41, // 'A' NotificationResponse
]);

/** enough for the buffers in flight between a reader and its consumer */
const MAX_SPARE_BUFFERS = 4;

type DataListener = (chunk: Buffer) => void;

export class CopyOut extends Readable implements Submittable {
  /** rows copied, from the CommandComplete tag (set once the stream ended) */
  rowCount = 0;
  private connection: Connection | null = null;
  /** pg's data listener, detached while this reads a plain socket */
  private pgListener: DataListener | null = null;
  /** the feed this claimed, on a socket with its own read buffer (pg-read-buffer.ts) */
  private feed: ReadFeed | null = null;
  private wanted = false;
  private forwarding = false;
  private out: Buffer;
  private outLength = 0;
  /** the 5-byte message header (type, length) when it arrives split over socket reads */
  private readonly head = Buffer.alloc(5);
  private headLength = 0;
  private code = 0;
  /** payload bytes of the current message still to come */
  private remaining = 0;
  private inMessage = false;
  private readonly onReadable = () => this.forward();
  /** full-size buffers the consumer gave back (see recycle), reused before allocating */
  private readonly spare: Buffer[] = [];

  /**
   * Each buffer pushed holds up to `chunkBytes` of COPY data after `reserveBytes` bytes left free for the
   * consumer (a frame head written in place, see encodeFrameAround).
   */
  constructor(
    readonly text: string,
    private readonly chunkBytes: number,
    private readonly reserveBytes = 0,
  ) {
    // object mode: each buffer is delivered as pushed (a byte stream would join them, reserved bytes and all)
    super({ objectMode: true, highWaterMark: 1 });
    this.out = this.allocate();
  }

  private allocate(): Buffer {
    this.outLength = this.reserveBytes;
    return this.spare.pop() ?? Buffer.allocUnsafe(this.reserveBytes + this.chunkBytes);
  }

  /**
   * Gives back a buffer this stream pushed, once nothing reads it any more, to be filled again: a copy of
   * hundreds of megabytes then reuses a few buffers instead of allocating one per chunk (measured on a
   * snapshot: less CPU, fewer full garbage collections). Buffers of another size (the last, partial one)
   * are left to the garbage collector; a buffer given back twice is kept once.
   */
  recycle(buf: Buffer): void {
    if (
      buf.length === this.reserveBytes + this.chunkBytes &&
      this.spare.length < MAX_SPARE_BUFFERS &&
      !this.spare.includes(buf)
    )
      this.spare.push(buf);
  }

  submit(connection: Connection): void {
    this.connection = connection;
    const socket = connection.stream;
    const feed = readFeedOf(socket);
    if (feed) {
      // reads arrive in the socket's own buffer: parsed at once, nothing kept; paused while not wanted
      this.feed = feed;
      feed.consumer = (bytes) => {
        this.parse(bytes);
        if (!this.wanted && this.feed) socket.pause();
      };
      if (!this.wanted) socket.pause();
      connection.query(this.text);
      return;
    }
    const listeners = socket.listeners('data') as DataListener[];
    if (listeners.length !== 1) {
      this.destroy(
        new Error(`COPY TO: expected one data listener on the connection, found ${listeners.length}`),
      );
      return;
    }
    this.pgListener = listeners[0];
    socket.removeListener('data', this.pgListener);
    socket.pause();
    socket.on('readable', this.onReadable);
    connection.query(this.text);
  }

  override _read(): void {
    this.wanted = true;
    if (this.feed) this.connection?.stream.resume();
    else this.forward();
  }

  private forward(): void {
    if (this.forwarding || !this.wanted || !this.pgListener || !this.connection) return;
    this.forwarding = true;
    try {
      const socket = this.connection.stream;
      while (this.wanted && this.pgListener !== null) {
        const chunk = socket.read() as Buffer | null;
        if (chunk === null) break;
        this.parse(chunk);
      }
    } finally {
      this.forwarding = false;
    }
  }

  /**
   * Walks the messages of one socket read. CopyData payloads are moved down over the headers inside
   * `chunk` itself (copyWithin allocates nothing; a per-row copy into another buffer would), then the
   * packed bytes `chunk[0, kept)` are appended to the output once. The bytes read from the socket are
   * this reader's alone (pg's listener is detached, or the feed claimed), so packing in place is safe.
   */
  private parse(chunk: Buffer): void {
    let pos = 0;
    let kept = 0;
    const end = chunk.length;
    while (pos < end) {
      // the common case first: whole CopyData messages inside this read, nothing carried over
      if (!this.inMessage && this.headLength === 0) {
        while (pos + 5 <= end && chunk[pos] === COPY_DATA) {
          const n =
            chunk[pos + 1] * 0x1000000 +
            ((chunk[pos + 2] << 16) | (chunk[pos + 3] << 8) | chunk[pos + 4]) -
            4;
          if (pos + 5 + n > end) break;
          chunk.copyWithin(kept, pos + 5, pos + 5 + n);
          kept += n;
          pos += 5 + n;
        }
        if (pos >= end) break;
      }
      if (this.inMessage) {
        const n = Math.min(this.remaining, end - pos);
        if (this.code === COPY_DATA) {
          if (kept !== pos) chunk.copyWithin(kept, pos, pos + n);
          kept += n;
        }
        pos += n;
        this.remaining -= n;
        if (this.remaining === 0) this.inMessage = false;
        continue;
      }
      // a message header: type byte and length (which counts itself); `at` < 0 when it began in an
      // earlier read (its bytes are then in `head`)
      let code: number;
      let length: number;
      let at = pos;
      if (this.headLength === 0 && end - pos >= 5) {
        code = chunk[pos];
        length = chunk.readUInt32BE(pos + 1);
        pos += 5;
      } else {
        const n = Math.min(5 - this.headLength, end - pos);
        chunk.copy(this.head, this.headLength, pos, pos + n);
        this.headLength += n;
        pos += n;
        if (this.headLength < 5) break;
        code = this.head[0];
        length = this.head.readUInt32BE(1);
        at = pos - 5;
      }
      if (code === ERROR_RESPONSE || (code !== COPY_DATA && code !== COPY_DONE && !SKIPPED.has(code))) {
        this.append(chunk, 0, kept);
        // pg parses the error (and its ReadyForQuery) and calls handleError, which ends this stream
        this.detach(this.unread(chunk, at));
        if (code !== ERROR_RESPONSE)
          this.destroy(new Error(`COPY TO: unexpected message type 0x${code.toString(16)} from the server`));
        return;
      }
      this.headLength = 0;
      if (code === COPY_DONE) {
        this.append(chunk, 0, kept);
        this.flush();
        this.detach(chunk.subarray(pos));
        return;
      }
      this.code = code;
      this.remaining = length - 4;
      this.inMessage = this.remaining > 0;
    }
    this.append(chunk, 0, kept);
  }

  /** the bytes from the header at `at` on (at < 0: the header's first bytes came in an earlier read) */
  private unread(chunk: Buffer, at: number): Buffer {
    if (at >= 0) return chunk.subarray(at);
    const rest = Buffer.concat([
      this.head.subarray(0, this.headLength),
      chunk.subarray(at + this.headLength),
    ]);
    this.headLength = 0;
    return rest;
  }

  private append(src: Buffer, from: number, to: number): void {
    while (from < to) {
      const n = Math.min(to - from, this.out.length - this.outLength);
      src.copy(this.out, this.outLength, from, from + n);
      this.outLength += n;
      from += n;
      if (this.outLength === this.out.length) this.flush();
    }
  }

  private flush(): void {
    if (this.outLength === this.reserveBytes) return;
    const full = this.outLength === this.out.length ? this.out : this.out.subarray(0, this.outLength);
    this.out = this.allocate();
    if (!this.push(full)) this.wanted = false;
  }

  /** Hands the socket back to pg, with the bytes it has not read yet. */
  private detach(rest: Buffer): void {
    const connection = this.connection;
    if (this.feed && connection) {
      this.feed.consumer = null;
      this.feed = null;
      const socket = connection.stream;
      // `rest` lies in the socket's read buffer, which the next read overwrites: pg gets a copy
      if (rest.length > 0) socket.emit('data', Buffer.from(rest));
      process.nextTick(() => socket.resume());
      return;
    }
    const listener = this.pgListener;
    if (!connection || !listener) return;
    this.pgListener = null;
    const socket = connection.stream;
    socket.removeListener('readable', this.onReadable);
    socket.on('data', listener);
    if (rest.length > 0) listener(rest);
    // pg may pause the socket while it handles what it was given: resume once that is done
    process.nextTick(() => socket.resume());
  }

  handleCommandComplete(msg: { text?: string }): void {
    const m = /COPY (\d+)/.exec(msg.text ?? '');
    if (m) this.rowCount = Number(m[1]);
  }

  handleReadyForQuery(): void {
    this.connection = null;
    this.push(null);
  }

  handleError(e: Error): void {
    if (this.pgListener || this.feed) this.detach(Buffer.alloc(0));
    this.connection = null;
    this.destroy(e);
  }
}
