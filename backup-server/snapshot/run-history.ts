/**
 * The history of snapshot runs (the last `historySize`, newest first), kept in
 * `<stateDir>/snapshot-history.json` and replaced atomically on every change.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomic } from './durable-fs';
import type { HookResult } from './hook-runner';

export type RunStatus = 'ok' | 'failed' | 'skipped';

export interface RunRecord {
  /** the snapshot's id, null when none was made */
  id: string | null;
  source: string;
  trigger: 'schedule' | 'manual';
  startedAt: string;
  finishedAt: string;
  durationMs: number;
  status: RunStatus;
  /** the snapshot's total size (linked files included) */
  totalBytes: number;
  /** bytes this run wrote (linked files excluded) */
  writtenBytes: number;
  tablesWritten: number;
  tablesLinked: number;
  lsn: string | null;
  /** why the run failed or was skipped */
  error: string | null;
  errorCode: string | null;
  hooks: { pre?: HookResult; post?: HookResult };
  /** snapshots deleted by rotation around this run */
  deleted: { source: string; id: string; reason: string }[];
  /** things that went wrong without failing the run (post-hook, rotation, stale sequences) */
  warnings: string[];
}

interface HistoryFile {
  formatVersion: 1;
  runs: RunRecord[];
}

export const HISTORY_FILE = 'snapshot-history.json';

export function historyPath(stateDir: string): string {
  return path.join(stateDir, HISTORY_FILE);
}

/** The recorded runs, newest first (empty when there is no history yet). */
export async function readRunHistory(stateDir: string): Promise<RunRecord[]> {
  try {
    const parsed = JSON.parse(await fs.promises.readFile(historyPath(stateDir), 'utf8')) as HistoryFile;
    return Array.isArray(parsed.runs) ? parsed.runs : [];
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
}

export class RunHistory {
  private writing: Promise<void> = Promise.resolve();

  constructor(
    private readonly stateDir: string,
    private readonly size: number,
  ) {}

  read(): Promise<RunRecord[]> {
    return readRunHistory(this.stateDir);
  }

  /** Adds a run at the front and drops the oldest beyond `size`; writes are serialised. */
  append(run: RunRecord): Promise<void> {
    const next = this.writing.then(async () => {
      await fs.promises.mkdir(this.stateDir, { recursive: true });
      const runs = [run, ...(await this.read().catch(() => []))].slice(0, this.size);
      const file: HistoryFile = { formatVersion: 1, runs };
      await writeFileAtomic(historyPath(this.stateDir), `${JSON.stringify(file, null, 2)}\n`);
    });
    this.writing = next.catch(() => undefined);
    return next;
  }
}
