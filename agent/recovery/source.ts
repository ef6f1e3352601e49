/**
 * Where snapshots are read from during a recovery: the backup server over FTP, or a local folder (a mounted
 * backup disk, tests). Paths are '/'-separated and relative to the snapshot root: `<source>/<id>/<file>`.
 */
import type { Writable } from 'node:stream';

export interface SourceEntry {
  name: string;
  isDirectory: boolean;
  size: number;
}

export interface SnapshotSource {
  /** for messages: "ftp://backup@host:2121" or "/mnt/backup/snapshots" */
  readonly description: string;
  /** entries of a folder; an empty list when it does not exist */
  list(dir: string): Promise<SourceEntry[]>;
  /** a small file (catalog, manifest) as text; null when it does not exist */
  readText(file: string, maxBytes: number): Promise<string | null>;
  /**
   * Writes the file's bytes from `startAt` on into `dest` (which is ended afterwards); rejects on any
   * failure, after which the source reconnects on its next use.
   */
  download(file: string, dest: Writable, startAt: number): Promise<void>;
  /** interrupts a running download (the download's promise rejects) */
  abort(): void;
  close(): Promise<void>;
}
