/**
 * The log file, rotated by size: `server.log` is written, `server.log.1` is the one before, up to
 * `server.log.<maxFiles - 1>`; the oldest is dropped. Writes are synchronous appends, so a burst or a
 * crash right after a line never loses it (winston's own File transport drops lines written while it
 * rotates before the file is open). A write that fails (disk full) is reported once on stderr, never thrown.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Writable } from 'node:stream';

export class RotatingLogFile extends Writable {
  private fd: number | null = null;
  private size = 0;
  private failed = false;
  private rotates = false;

  constructor(
    readonly file: string,
    private readonly maxBytes: number,
    private readonly maxFiles: number,
  ) {
    super();
    fs.mkdirSync(path.dirname(file), { recursive: true });
    this.open();
  }

  private open(): void {
    this.fd = fs.openSync(this.file, 'a', 0o640);
    const st = fs.fstatSync(this.fd);
    // only a regular file is rotated (never /dev/null or a named pipe)
    this.rotates = st.isFile();
    this.size = st.size;
  }

  private rotate(): void {
    if (this.fd !== null) fs.closeSync(this.fd);
    this.fd = null;
    if (this.maxFiles <= 1) fs.rmSync(this.file, { force: true });
    for (let i = this.maxFiles - 1; i >= 1; i--) {
      const from = i === 1 ? this.file : `${this.file}.${i - 1}`;
      if (fs.existsSync(from)) fs.renameSync(from, `${this.file}.${i}`);
    }
    this.open();
  }

  override _write(chunk: Buffer | string, _enc: BufferEncoding, done: (e?: Error | null) => void): void {
    const data = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    try {
      if (this.rotates && this.size > 0 && this.size + data.length > this.maxBytes) this.rotate();
      if (this.fd === null) this.open();
      fs.writeSync(this.fd ?? -1, data);
      this.size += data.length;
    } catch (e) {
      if (!this.failed)
        process.stderr.write(`pgferry: cannot write the log file ${this.file}: ${(e as Error).message}\n`);
      this.failed = true;
    }
    done();
  }

  override _final(done: (e?: Error | null) => void): void {
    if (this.fd !== null) fs.closeSync(this.fd);
    this.fd = null;
    done();
  }
}
