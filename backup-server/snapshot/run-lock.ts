/**
 * Runs never overlap: an in-process mutex serialises this process's snapshot and rotation runs, and a lock
 * file under stateDir keeps two processes (the server and `pgferry snapshot create`) from running at once.
 * A lock left by a dead process (kill -9, reboot) is taken over.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PgferryError } from '../../shared/errors';

/** Serialises async sections inside one process, in call order. */
export class Mutex {
  private tail: Promise<void> = Promise.resolve();
  private holders = 0;

  get busy(): boolean {
    return this.holders > 0;
  }

  async run<T>(fn: () => Promise<T>): Promise<T> {
    const prev = this.tail;
    let release!: () => void;
    this.tail = new Promise<void>((r) => {
      release = r;
    });
    this.holders++;
    try {
      await prev;
      return await fn();
    } finally {
      this.holders--;
      release();
    }
  }
}

interface LockOwner {
  pid: number;
  bootId: string;
  host: string;
  what: string;
  since: string;
}

function bootId(): string {
  try {
    return fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return '';
  }
}

function isAlive(owner: LockOwner): boolean {
  if (owner.host !== os.hostname() || owner.bootId !== bootId()) return false;
  try {
    process.kill(owner.pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function readOwner(file: string): LockOwner | null {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as LockOwner;
  } catch {
    return null;
  }
}

export class RunLock {
  private constructor(private readonly file: string) {}

  /** Takes the lock or throws SNAPSHOT_BUSY naming the process that holds it. */
  static acquire(stateDir: string, what: string): RunLock {
    fs.mkdirSync(stateDir, { recursive: true });
    const file = path.join(stateDir, 'snapshot-run.lock');
    const me: LockOwner = {
      pid: process.pid,
      bootId: bootId(),
      host: os.hostname(),
      what,
      since: new Date().toISOString(),
    };
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        fs.writeFileSync(file, JSON.stringify(me), { flag: 'wx' });
        return new RunLock(file);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
      const owner = readOwner(file);
      if (owner === null) {
        // being written right now, or garbage: garbage older than a few seconds is stale
        const st = fs.statSync(file, { throwIfNoEntry: false });
        if (st && Date.now() - st.mtimeMs < 5000) continue;
      } else if (isAlive(owner)) {
        throw new PgferryError(
          'SNAPSHOT_BUSY',
          `${owner.what} is already running in process ${owner.pid} since ${owner.since} (lock ${file})`,
        );
      }
      fs.rmSync(file, { force: true });
    }
    throw new PgferryError('SNAPSHOT_BUSY', `cannot take the lock ${file}; another process keeps taking it`);
  }

  release(): void {
    if (readOwner(this.file)?.pid === process.pid) fs.rmSync(this.file, { force: true });
  }
}
