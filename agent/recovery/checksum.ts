/** SHA-256 of local files, and a file writer that hashes what it writes (so a download is checked as it lands). */
import { createHash, type Hash } from 'node:crypto';
import * as fs from 'node:fs';
import { Writable } from 'node:stream';

/** Feeds the file's bytes into `hash` (a new SHA-256 when not given) and returns it. */
export async function hashFile(file: string, hash: Hash = createHash('sha256')): Promise<Hash> {
  for await (const chunk of fs.createReadStream(file, { highWaterMark: 1024 * 1024 }))
    hash.update(chunk as Buffer);
  return hash;
}

export async function sha256OfFile(file: string): Promise<string> {
  return (await hashFile(file)).digest('hex');
}

/**
 * Appends to `file` (or creates it when `append` is false), updating `hash` with every chunk once it is
 * written and calling `onBytes` for it. `fileClosed` settles when the file is closed, whatever happened.
 */
export class ChecksumWriter extends Writable {
  bytesWritten = 0;
  private fh: Promise<fs.promises.FileHandle>;
  readonly fileClosed: Promise<void>;
  private markClosed!: () => void;

  constructor(
    file: string,
    append: boolean,
    private readonly hash: Hash,
    private readonly onBytes: (n: number) => void = () => undefined,
  ) {
    super({ highWaterMark: 1024 * 1024 });
    this.fh = fs.promises.open(file, append ? 'a' : 'w');
    this.fh.catch(() => undefined);
    this.fileClosed = new Promise((resolve) => {
      this.markClosed = resolve;
    });
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.fh
      .then((fh) => fh.write(chunk))
      .then(() => {
        this.hash.update(chunk);
        this.bytesWritten += chunk.length;
        this.onBytes(chunk.length);
        cb();
      }, cb);
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.release().then(() => cb(), cb);
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.release().then(
      () => cb(err),
      () => cb(err),
    );
  }

  private released = false;
  private async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    try {
      await (await this.fh).close();
    } finally {
      this.markClosed();
    }
  }

  /** closes the file now (after a failed transfer) */
  async shut(): Promise<void> {
    if (!this.destroyed) this.destroy();
    await this.release().catch(() => undefined);
    await this.fileClosed;
  }
}
