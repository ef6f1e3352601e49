/**
 * CPU seconds each stage of a replication pipeline used during a run, from /proc/<pid>/stat: the primary's
 * walsender, the agent and server processes (pgferry), and the replica backends that apply. A stage near
 * one core's worth of the run's time is the bottleneck; stages far below it point at waiting instead.
 */
import * as fs from 'node:fs';
import type { Cluster } from '../harness/cluster';
import { sql } from './bench-env';

const TICKS_PER_SECOND = 100;

function cpuTicks(pid: number): number | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // fields after the command name (which may hold spaces) start at ") "
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(f[11]) + Number(f[12]); // utime + stime
  } catch {
    return null;
  }
}

export interface Stage {
  label: string;
  pid: number;
}

/** Backends of `cluster` matching a pg_stat_activity condition, labelled. */
export async function backends(cluster: Cluster, label: string, where: string): Promise<Stage[]> {
  const rows = await sql(cluster.url(), `SELECT pid FROM pg_stat_activity WHERE ${where}`);
  return rows.map((r, i) => ({ label: rows.length > 1 ? `${label}#${i + 1}` : label, pid: Number(r.pid) }));
}

export class CpuMeter {
  private readonly start = new Map<number, number>();
  /** the last ticks read of each process (a process that exited keeps its last reading) */
  private readonly last = new Map<number, number>();
  private readonly stages: Stage[];
  private readonly t0 = performance.now();
  private timer: NodeJS.Timeout | null = null;

  /**
   * @param discover with it, the stages are looked up again every 100 ms and processes that appear
   *   during the run are counted too (from their start), e.g. a backend that lives for one transaction;
   *   the CPU of one that exits is counted up to the last look (at most 100 ms of it is missed)
   */
  constructor(stages: Stage[], discover?: () => Promise<Stage[]>) {
    this.stages = [...stages];
    for (const s of stages) this.start.set(s.pid, cpuTicks(s.pid) ?? 0);
    if (discover) {
      let busy = false;
      this.timer = setInterval(() => {
        if (busy) return;
        busy = true;
        this.sample();
        discover()
          .then((found) => {
            for (const s of found)
              if (!this.start.has(s.pid)) {
                this.start.set(s.pid, 0);
                this.stages.push({ label: `${s.label} (new)`, pid: s.pid });
              }
          })
          .catch(() => undefined)
          .finally(() => {
            busy = false;
          });
      }, 100);
    }
  }

  private sample(): void {
    for (const s of this.stages) {
      const t = cpuTicks(s.pid);
      if (t !== null) this.last.set(s.pid, t);
    }
  }

  /** "label 1.23 s (45 %)" per stage: CPU seconds since the meter started and the share of one core. */
  read(): { label: string; seconds: number; percentOfCore: number }[] {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.sample();
    const wall = (performance.now() - this.t0) / 1000;
    return this.stages.map((s) => {
      const start = this.start.get(s.pid) ?? 0;
      const seconds = ((this.last.get(s.pid) ?? start) - start) / TICKS_PER_SECOND;
      return { label: s.label, seconds, percentOfCore: Math.round((seconds / wall) * 100) };
    });
  }
}

export function formatCpu(xs: { label: string; seconds: number; percentOfCore: number }[]): string {
  return xs.map((x) => `${x.label} ${x.seconds.toFixed(1)} s (${x.percentOfCore} %)`).join(', ');
}

/** CPU ticks of `pid` including its reaped children, plus (if `live`) those of its live children. */
function treeTicks(pid: number, live: boolean): number {
  let total = 0;
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    total = Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]); // utime stime cutime cstime
  } catch {
    return 0;
  }
  if (!live) return total;
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(f[1]) === pid) total += Number(f[11]) + Number(f[12]);
    } catch {
      /* gone */
    }
  }
  return total;
}

/** The postmaster's pid of a cluster's data directory. */
export function postmasterPid(dataDir: string): number {
  return Number(fs.readFileSync(`${dataDir}/postmaster.pid`, 'utf8').split('\n')[0]);
}

/** a process tree to account: its root's pid now (null while there is none), and whether live children count */
export interface CpuRoot {
  pid: () => number | null;
  live: boolean;
}

/**
 * CPU seconds of whole process trees (a cluster's postmaster with every backend and worker, an agent with
 * its pg_dump, this process with the pg tools it ran) between `start` and `read`. Children that exited
 * count once their parent reaped them, which a postmaster and node do at once.
 */
export class TreeCpuMeter {
  private readonly start: Map<string, number>;
  private readonly t0 = performance.now();

  constructor(private readonly roots: Map<string, CpuRoot>) {
    this.start = new Map([...roots].map(([label, r]) => [label, this.ticks(r)]));
  }

  private ticks(r: CpuRoot): number {
    const pid = r.pid();
    return pid === null ? 0 : treeTicks(pid, r.live);
  }

  read(): { label: string; seconds: number; percentOfCore: number }[] {
    const wall = (performance.now() - this.t0) / 1000;
    return [...this.roots].map(([label, r]) => {
      const seconds = (this.ticks(r) - (this.start.get(label) ?? 0)) / TICKS_PER_SECOND;
      return { label, seconds, percentOfCore: Math.round((seconds / wall) * 100) };
    });
  }
}
