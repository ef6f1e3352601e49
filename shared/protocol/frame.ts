/**
 * Length-prefixed frames: [u32 length][u32 headerLength][header JSON][body bytes]
 * `length` counts everything after itself. The header is a JSON message (see messages.ts); the optional
 * body carries bulk bytes (COPY data) without JSON encoding. Frames above `maxFrameBytes` are refused.
 */
import { PgferryError } from '../errors';

export interface Frame<H = unknown> {
  header: H;
  /** the body in one buffer (null when there is none, or when it comes in `parts`) */
  body: Buffer | null;
  /** the body as the pieces it arrived in, for frames the decoder was told not to join (see FrameDecoder) */
  parts?: Buffer[];
}

/** Body bytes of a frame, however it carries them. */
export function bodyLength(f: Frame): number {
  if (f.parts) return f.parts.reduce((n, p) => n + p.length, 0);
  return f.body ? f.body.length : 0;
}

const PREFIX = 8;

export function encodeFrame(header: unknown, body?: Buffer | null): Buffer {
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const bodyLen = body ? body.length : 0;
  const out = Buffer.allocUnsafe(PREFIX + json.length + bodyLen);
  out.writeUInt32BE(4 + json.length + bodyLen, 0);
  out.writeUInt32BE(json.length, 4);
  json.copy(out, PREFIX);
  if (body) body.copy(out, PREFIX + json.length);
  return out;
}

/**
 * Encodes a frame around a body that already sits in `buf` at [bodyStart, bodyEnd): the length prefix and
 * header are written into the bytes just before the body (there must be room), and the frame is returned
 * as a view of `buf`. A bulk body is then sent without being copied into a new buffer.
 */
export function encodeFrameAround(buf: Buffer, bodyStart: number, bodyEnd: number, header: unknown): Buffer {
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const start = bodyStart - PREFIX - json.length;
  if (start < 0)
    throw new RangeError(`no room for a ${PREFIX + json.length}-byte frame head before the body`);
  buf.writeUInt32BE(4 + json.length + (bodyEnd - bodyStart), start);
  buf.writeUInt32BE(json.length, start + 4);
  json.copy(buf, start + PREFIX);
  return buf.subarray(start, bodyEnd);
}

/**
 * Incremental decoder: feed it chunks as they arrive, get whole frames out. A body is joined into one
 * buffer, except for frames `unjoined(header)` picks: those keep the received pieces in `parts` (no copy,
 * no new buffer: a bulk stream then allocates nothing per frame).
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;

  constructor(
    public maxFrameBytes: number,
    private readonly unjoined?: (header: { tag: string }) => boolean,
  ) {}

  push(chunk: Buffer): Frame[] {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const frames: Frame[] = [];
    for (;;) {
      if (this.buffered < 4) break;
      const length = this.peek(4).readUInt32BE(0);
      if (length > this.maxFrameBytes) {
        throw new PgferryError(
          'FRAME_TOO_LARGE',
          `frame of ${length} bytes exceeds the limit of ${this.maxFrameBytes} bytes`,
        );
      }
      if (length < 4) throw new PgferryError('PROTOCOL_ERROR', `invalid frame length ${length}`);
      if (this.buffered < 4 + length) break;
      const headerLength = this.peek(PREFIX).readUInt32BE(4);
      if (headerLength > length - 4) {
        throw new PgferryError(
          'PROTOCOL_ERROR',
          `invalid frame: header length ${headerLength} exceeds frame length ${length}`,
        );
      }
      this.take(PREFIX);
      const header = parseHeader(this.take(headerLength));
      const bodyLength = length - 4 - headerLength;
      if (bodyLength === 0) frames.push({ header, body: null });
      else if (this.unjoined?.(header))
        frames.push({ header, body: null, parts: this.takeParts(bodyLength) });
      else frames.push({ header, body: this.take(bodyLength) });
    }
    return frames;
  }

  get bufferedBytes(): number {
    return this.buffered;
  }

  private peek(n: number): Buffer {
    if (this.chunks[0].length >= n) return this.chunks[0];
    this.chunks = [Buffer.concat(this.chunks)];
    return this.chunks[0];
  }

  private take(n: number): Buffer {
    const first = this.chunks[0];
    let out: Buffer;
    if (first.length >= n) {
      out = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
    } else {
      const all = Buffer.concat(this.chunks);
      out = all.subarray(0, n);
      this.chunks = all.length > n ? [all.subarray(n)] : [];
    }
    this.buffered -= n;
    return out;
  }

  /** the next `n` bytes as views of the chunks they are in */
  private takeParts(n: number): Buffer[] {
    const parts: Buffer[] = [];
    this.buffered -= n;
    while (n > 0) {
      const first = this.chunks[0];
      if (first.length <= n) {
        parts.push(first);
        this.chunks.shift();
        n -= first.length;
      } else {
        parts.push(first.subarray(0, n));
        this.chunks[0] = first.subarray(n);
        n = 0;
      }
    }
    return parts;
  }
}

function parseHeader(bytes: Buffer): { tag: string } {
  let header: unknown;
  try {
    header = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new PgferryError('PROTOCOL_ERROR', 'invalid frame: the header is not JSON');
  }
  if (
    header === null ||
    typeof header !== 'object' ||
    typeof (header as { tag?: unknown }).tag !== 'string'
  ) {
    throw new PgferryError('PROTOCOL_ERROR', 'invalid frame: the header has no tag');
  }
  return header as { tag: string };
}
