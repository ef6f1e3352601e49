/**
 * A framed, back-pressured message connection over any duplex stream (TCP or TLS socket).
 * Incoming frames are handed to one async handler at a time; the socket is paused while frames wait,
 * so a slow consumer slows the sender instead of buffering without bound.
 */
import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import { describeError, PgferryError } from '../errors';
import { bodyLength, encodeFrame, encodeFrameAround, type Frame, FrameDecoder } from './frame';

/** frames received but not handled, in bytes, before the socket is paused (back-pressure to the peer) */
const QUEUE_BUDGET_BYTES = 8 * 1024 * 1024;
const frameCost = (f: Frame): number => 256 + bodyLength(f);

export type FrameHandler<H> = (frame: Frame<H>) => Promise<void> | void;

export class FramedConnection<In extends { tag: string }, Out extends { tag: string }> extends EventEmitter {
  private readonly decoder: FrameDecoder;
  private readonly queue: Frame<In>[] = [];
  private handler: FrameHandler<In> | null = null;
  private queuedBytes = 0;
  private draining = false;
  private closedFlag = false;
  private closeError: Error | null = null;
  /** the peer closed while frames were waiting: they are handled, then the connection closes */
  private peerGone = false;
  private forced = false;
  readonly closed: Promise<Error | null>;
  private resolveClosed!: (e: Error | null) => void;
  /**
   * frames read ahead of the handler, in bytes, before the socket is paused; a bulk transfer sets it lower
   * (its buffers then die young instead of filling the old generation and forcing major GCs)
   */
  queueBudgetBytes = QUEUE_BUDGET_BYTES;
  /** the version both peers agreed on in the handshake */
  protocolVersion = 1;
  /** bytes written / read, for metrics */
  bytesOut = 0;
  bytesIn = 0;

  /** `unjoined`: frames whose bodies are handed over in the pieces they arrived in (Frame.parts) */
  constructor(
    readonly socket: Duplex,
    maxFrameBytes: number,
    unjoined?: (header: { tag: string }) => boolean,
  ) {
    super();
    this.decoder = new FrameDecoder(maxFrameBytes, unjoined);
    this.closed = new Promise((r) => {
      this.resolveClosed = r;
    });
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (e) => this.fail(e));
    socket.on('close', () => this.fail(null));
    socket.on('end', () => this.fail(null));
  }

  set maxFrameBytes(n: number) {
    this.decoder.maxFrameBytes = n;
  }

  /** frames received and not yet handled */
  get pendingFrames(): number {
    return this.queue.length;
  }

  get isClosed(): boolean {
    return this.closedFlag || this.peerGone;
  }

  /** Starts delivering frames (in order, one at a time) to `handler`. */
  onFrames(handler: FrameHandler<In>): void {
    this.handler = handler;
    void this.drain();
  }

  /** Sends one message; resolves once the socket accepted it (waits for 'drain' under back-pressure). */
  async send(header: Out, body?: Buffer | null): Promise<void> {
    this.checkOpen();
    await this.write(encodeFrame(header, body));
  }

  /**
   * Like `send`, for a body that is `buf` from `bodyStart` on: the frame head is written into the bytes
   * before it (see encodeFrameAround), so a bulk body is not copied.
   */
  async sendInPlace(header: Out, buf: Buffer, bodyStart: number): Promise<void> {
    this.checkOpen();
    await this.write(encodeFrameAround(buf, bodyStart, buf.length, header));
  }

  private async write(frame: Buffer): Promise<void> {
    this.bytesOut += frame.length;
    if (!this.socket.write(frame)) {
      await new Promise<void>((resolve) => {
        const done = () => {
          this.socket.off('drain', done);
          this.off('closed', done);
          resolve();
        };
        this.socket.on('drain', done);
        this.on('closed', done);
      });
    }
  }

  private checkOpen(): void {
    if (this.closedFlag)
      throw new PgferryError(
        'CONNECTION_LOST',
        `connection closed${this.closeError ? `: ${this.closeError.message}` : ''}`,
      );
  }

  /** Sends a final message (best effort) and closes. */
  async end(last?: Out): Promise<void> {
    if (this.closedFlag) return;
    if (last) {
      try {
        this.socket.write(encodeFrame(last));
      } catch {
        /* closing anyway */
      }
    }
    this.socket.end();
    const timer = setTimeout(() => this.socket.destroy(), 2000);
    timer.unref();
    await this.closed;
    clearTimeout(timer);
  }

  /** Closes at once: frames not yet handled are dropped. */
  destroy(err?: Error): void {
    this.forced = true;
    this.socket.destroy();
    this.fail(err ?? null);
  }

  private onData(chunk: Buffer): void {
    this.bytesIn += chunk.length;
    let frames: Frame[];
    try {
      frames = this.decoder.push(chunk);
    } catch (e) {
      this.emit('protocolError', e);
      this.destroy(e as Error);
      return;
    }
    for (const f of frames) {
      this.queue.push(f as Frame<In>);
      this.queuedBytes += frameCost(f);
      // announced on arrival, before handling: liveness and "the peer said it stops" must not wait
      // behind a handler that is busy with earlier frames
      this.emit('arrived', (f as Frame<In>).header);
    }
    if (this.queue.length > 0) {
      // keep reading while a frame is handled, up to a budget: waiting input then shows in pendingFrames
      // (the applier groups it into one replica transaction) instead of sitting unseen in the kernel
      if (!this.handler || this.queuedBytes > this.queueBudgetBytes) this.socket.pause();
      this.emit('queued');
      void this.drain();
    }
  }

  /**
   * Takes the next frame directly (handshake use, before `onFrames`), failing after `timeoutMs`
   * or when the connection closes.
   */
  next(timeoutMs: number): Promise<Frame<In>> {
    if (this.handler) throw new Error('next() cannot be used once onFrames() is set');
    return new Promise((resolve, reject) => {
      const take = (): boolean => {
        const f = this.queue.shift();
        if (!f) return false;
        this.queuedBytes -= frameCost(f);
        cleanup();
        if (this.queue.length === 0 && !this.closedFlag) this.socket.resume();
        resolve(f);
        return true;
      };
      const onClosed = (e: Error | null) => {
        cleanup();
        reject(
          new PgferryError(
            'CONNECTION_LOST',
            `connection closed during the handshake${e ? `: ${e.message}` : ''}`,
          ),
        );
      };
      const onQueued = () => void take();
      const timer = setTimeout(() => {
        cleanup();
        reject(new PgferryError('PROTOCOL_ERROR', `no answer within ${timeoutMs} ms during the handshake`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        this.off('closed', onClosed);
        this.off('queued', onQueued);
      };
      if (take()) return;
      if (this.closedFlag) return onClosed(this.closeError);
      this.on('closed', onClosed);
      this.on('queued', onQueued);
    });
  }

  private async drain(): Promise<void> {
    if (this.draining || !this.handler) return;
    this.draining = true;
    try {
      while (this.queue.length > 0 && !this.closedFlag) {
        const f = this.queue.shift()!;
        this.queuedBytes -= frameCost(f);
        if (this.queuedBytes < this.queueBudgetBytes / 2 && !this.peerGone && !this.closedFlag)
          this.socket.resume();
        await this.handler(f);
      }
    } catch (e) {
      this.emit('handlerError', e);
      this.destroy(e instanceof Error ? e : new Error(describeError(e)));
    } finally {
      this.draining = false;
      if (this.peerGone && this.queue.length === 0) this.finish(this.closeError);
      else if (!this.closedFlag && !this.peerGone) this.socket.resume();
    }
  }

  /**
   * The peer is gone (it closed, or the socket broke). Frames it sent before are still handled — a clean
   * stop's CLOSE must not be lost behind a busy handler — and then the connection counts as closed.
   */
  private fail(err: Error | null): void {
    if (this.closedFlag) return;
    if (!this.forced && this.handler && (this.queue.length > 0 || this.draining)) {
      this.peerGone = true;
      this.closeError ??= err;
      void this.drain();
      return;
    }
    this.finish(err ?? this.closeError);
  }

  private finish(err: Error | null): void {
    if (this.closedFlag) return;
    this.closedFlag = true;
    this.closeError = err;
    this.queue.length = 0;
    this.queuedBytes = 0;
    this.emit('closed', err);
    this.resolveClosed(err);
  }
}
