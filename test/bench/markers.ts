/**
 * End-to-end lag, measured the same way for any replicator: a marker row (id, ts = clock_timestamp()) is
 * inserted on the primary in its own transaction every 200 ms; the replica's copy of the table has an extra
 * column applied_at DEFAULT clock_timestamp(), filled when the apply side writes the row. A poller on the
 * replica also records when each marker became visible (committed), which catches any delay between the
 * write and the commit (grouped transactions) that applied_at cannot see.
 */
import type { Client } from 'pg';
import { connect, now, sleep } from './bench-env';

export const MARKER_DDL = 'CREATE TABLE bench_marker (id bigserial PRIMARY KEY, ts timestamptz NOT NULL)';
/** run on the replica's copy only */
export const MARKER_REPLICA_DDL =
  'ALTER TABLE bench_marker ADD COLUMN applied_at timestamptz DEFAULT clock_timestamp()';

export interface Lag {
  p50: number;
  p99: number;
  max: number;
  n: number;
}

/** Nearest-rank percentile of `xs` (0 < p <= 100). */
export function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const i = Math.min(s.length, Math.max(1, Math.ceil((p / 100) * s.length)));
  return s[i - 1];
}

export function lagOf(ms: number[]): Lag {
  return { p50: percentile(ms, 50), p99: percentile(ms, 99), max: percentile(ms, 100), n: ms.length };
}

/** Inserts a marker every `intervalMs` on its own connection until stopped. */
export class MarkerWriter {
  private running = true;
  private loop: Promise<void> = Promise.resolve();

  private constructor(private readonly c: Client) {}

  static async start(primaryUrl: string, intervalMs: number): Promise<MarkerWriter> {
    const w = new MarkerWriter(await connect(primaryUrl, 'bench-marker-writer'));
    w.loop = w.run(intervalMs);
    return w;
  }

  private async run(intervalMs: number): Promise<void> {
    let next = now();
    while (this.running) {
      await this.c.query('INSERT INTO bench_marker (ts) VALUES (clock_timestamp())');
      next += intervalMs;
      await sleep(Math.max(0, next - now()));
    }
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
    await this.c.end();
  }
}

/** Polls the replica every `intervalMs` and notes when each marker id was first seen. */
export class MarkerWatcher {
  readonly seenAt = new Map<number, number>();
  private running = true;
  private loop: Promise<void> = Promise.resolve();
  private last: number;

  private constructor(
    private readonly c: Client,
    afterId: number,
  ) {
    this.last = afterId;
  }

  static async start(replicaUrl: string, afterId: number, intervalMs: number): Promise<MarkerWatcher> {
    const w = new MarkerWatcher(await connect(replicaUrl, 'bench-marker-watcher'), afterId);
    w.loop = w.run(intervalMs);
    return w;
  }

  private async run(intervalMs: number): Promise<void> {
    while (this.running) {
      await this.poll();
      await sleep(intervalMs);
    }
  }

  private async poll(): Promise<void> {
    const r = await this.c.query<{ id: string }>('SELECT id FROM bench_marker WHERE id > $1 ORDER BY id', [
      this.last,
    ]);
    const t = Date.now(); // wall clock, comparable with the primary's clock_timestamp()
    for (const { id } of r.rows) {
      const n = Number(id);
      if (!this.seenAt.has(n)) this.seenAt.set(n, t);
      this.last = Math.max(this.last, n);
    }
  }

  /** Waits until marker `id` was seen (or `timeoutMs`); returns when. */
  async waitFor(id: number, timeoutMs: number): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const t = this.seenAt.get(id);
      if (t !== undefined) return t;
      if (Date.now() > deadline)
        throw new Error(`marker ${id} was not replicated within ${timeoutMs / 1000} s`);
      await sleep(5);
    }
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
    await this.c.end();
  }
}

/** Inserts one marker on the primary; returns its id and ts (epoch ms). */
export async function insertMarker(primaryUrl: string): Promise<{ id: number; ts: number }> {
  const c = await connect(primaryUrl);
  try {
    const r = await c.query<{ id: string; ts: string }>(
      'INSERT INTO bench_marker (ts) VALUES (clock_timestamp()) RETURNING id, extract(epoch FROM ts) * 1000 AS ts',
    );
    return { id: Number(r.rows[0].id), ts: Number(r.rows[0].ts) };
  } finally {
    await c.end();
  }
}

/** Inserts a marker and waits until the replica has it: everything committed before it is applied. */
export async function roundtrip(
  primaryUrl: string,
  replicaUrl: string,
  timeoutMs = 600_000,
): Promise<number> {
  const m = await insertMarker(primaryUrl);
  const w = await MarkerWatcher.start(replicaUrl, m.id - 1, 10);
  try {
    await w.waitFor(m.id, timeoutMs);
    return m.id;
  } finally {
    await w.stop();
  }
}

/** Markers with from < id < to: their primary ts and replica applied_at (epoch ms), by id. */
export async function markerTimes(
  primaryUrl: string,
  replicaUrl: string,
  fromId: number,
  toId: number,
): Promise<{ ts: Map<number, number>; appliedAt: Map<number, number> }> {
  const read = async (url: string, column: string) => {
    const c = await connect(url);
    try {
      const r = await c.query<{ id: string; t: string }>(
        `SELECT id, extract(epoch FROM ${column}) * 1000 AS t FROM bench_marker WHERE id > $1 AND id < $2`,
        [fromId, toId],
      );
      return new Map(r.rows.map((x) => [Number(x.id), Number(x.t)]));
    } finally {
      await c.end();
    }
  };
  const ts = await read(primaryUrl, 'ts');
  const appliedAt = await read(replicaUrl, 'applied_at');
  if (appliedAt.size !== ts.size)
    throw new Error(`markers: the primary wrote ${ts.size}, the replica has ${appliedAt.size}`);
  return { ts, appliedAt };
}
