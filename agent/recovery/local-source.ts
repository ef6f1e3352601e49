/** Snapshots read from a local folder laid out like the backup server's snapshot folder. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { SnapshotSource, SourceEntry } from './source';

export class LocalSource implements SnapshotSource {
  readonly description: string;
  private readonly root: string;
  private controller = new AbortController();

  constructor(root: string) {
    this.root = path.resolve(root);
    this.description = this.root;
  }

  private resolve(rel: string): string {
    const p = path.resolve(this.root, `.${path.posix.normalize(`/${rel}`)}`);
    if (p !== this.root && !p.startsWith(this.root + path.sep))
      throw new Error(`path outside the root: ${rel}`);
    return p;
  }

  async list(dir: string): Promise<SourceEntry[]> {
    let names: fs.Dirent[];
    try {
      names = await fs.promises.readdir(this.resolve(dir), { withFileTypes: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
    const out: SourceEntry[] = [];
    for (const d of names) {
      const st = await fs.promises.stat(path.join(this.resolve(dir), d.name)).catch(() => null);
      if (st) out.push({ name: d.name, isDirectory: st.isDirectory(), size: st.size });
    }
    return out;
  }

  async readText(file: string, maxBytes: number): Promise<string | null> {
    try {
      const fh = await fs.promises.open(this.resolve(file), 'r');
      try {
        const buf = Buffer.alloc(maxBytes + 1);
        const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
        if (bytesRead > maxBytes) throw new Error(`${file} is larger than ${maxBytes} bytes`);
        return buf.subarray(0, bytesRead).toString('utf8');
      } finally {
        await fh.close();
      }
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw e;
    }
  }

  async download(file: string, dest: Writable, startAt: number): Promise<void> {
    if (this.controller.signal.aborted) this.controller = new AbortController();
    await pipeline(fs.createReadStream(this.resolve(file), { start: startAt }), dest, {
      signal: this.controller.signal,
    });
  }

  abort(): void {
    this.controller.abort(new Error('download interrupted'));
  }

  async close(): Promise<void> {}
}
