/** The benchmark's output: machine facts, the table of ratios on stdout, and the JSON file of a run. */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { BenchRow } from './row';

export interface MachineFacts {
  cpus: number;
  cpuModel: string;
  memoryGiB: number;
  os: string;
  node: string;
  postgres: string;
  gitCommit: string;
  loadAverageAtStart: number[];
  loadAverageAtEnd?: number[];
}

export function machineFacts(postgres: string): MachineFacts {
  let gitCommit = 'unknown';
  try {
    const rev = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], {
      encoding: 'utf8',
    });
    gitCommit = dirty.trim() ? `${rev} (with uncommitted changes)` : rev;
  } catch {
    /* not a checkout */
  }
  return {
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model.trim() ?? 'unknown',
    memoryGiB: Math.round((os.totalmem() / 1024 ** 3) * 10) / 10,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    postgres,
    gitCommit,
    loadAverageAtStart: os.loadavg().map((x) => Math.round(x * 100) / 100),
  };
}

export function factsHeader(m: MachineFacts, mode: string): string {
  const load = (l: number[] | undefined) => (l ? l.join(' / ') : '-');
  return [
    `pgferry benchmark (${mode}), ${new Date().toISOString()}, commit ${m.gitCommit}`,
    `machine: ${m.cpus} CPUs (${m.cpuModel}), ${m.memoryGiB} GiB RAM, ${m.os}; node ${m.node}; ${m.postgres}`,
    `load average 1/5/15 min: at start ${load(m.loadAverageAtStart)}, at end ${load(m.loadAverageAtEnd)}`,
  ].join('\n');
}

/** true when the row meets its target (a target of 0 marks a figure shown for information only) */
export const passes = (r: BenchRow): boolean => r.ratio >= r.target;

function figure(x: number, unit: string): string {
  if (!Number.isFinite(x)) return '-';
  const digits = Math.abs(x) >= 1000 ? 0 : Math.abs(x) >= 10 ? 1 : 2;
  return `${x.toLocaleString('en', { maximumFractionDigits: digits, minimumFractionDigits: digits })} ${unit}`;
}

export function formatTable(rows: BenchRow[]): string {
  const head = ['#', 'benchmark', 'pgferry', 'peer', 'ratio', 'target', 'result'];
  const cell = (s: string) => s.replace(/\|/g, '\\|'); // the table is Markdown
  const body = rows.map((r, i) => [
    String(i + 1),
    cell(r.name),
    figure(r.pgferry, r.unit),
    cell(`${figure(r.peer, r.unit)} (${r.peerName})`),
    Number.isFinite(r.ratio) ? `${r.ratio.toFixed(2)}x` : '-',
    r.target > 0 ? `>= ${r.target.toFixed(2)}x` : 'info',
    r.target > 0 ? (passes(r) ? 'PASS' : 'FAIL') : '',
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells: string[]) =>
    `| ${cells.map((c, i) => (i >= 2 && i <= 4 ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join(' | ')} |`;
  const rule = `|${widths.map((w, i) => (i >= 2 && i <= 4 ? `${'-'.repeat(w + 1)}:` : '-'.repeat(w + 2))).join('|')}|`;
  const notes = rows
    .map((r, i) => (r.notes ? `${i + 1}. ${r.notes} (median of ${r.runs})` : `${i + 1}. median of ${r.runs}`))
    .join('\n');
  return [line(head), rule, ...body.map(line), '', notes].join('\n');
}

export interface BenchResult {
  mode: string;
  startedAt: string;
  finishedAt: string;
  seconds: number;
  machine: MachineFacts;
  parameters: Record<string, unknown>;
  rows: BenchRow[];
  /** sections that could not run, with why */
  skipped: { section: string; reason: string }[];
  errors: { section: string; error: string }[];
  profile?: unknown;
  /** the progress lines: every run's own figures */
  log?: string[];
}

/** Writes bench-results/<timestamp>.json at the top of the checkout; returns its path. */
export function writeResult(result: BenchResult): string {
  const dir = path.resolve(__dirname, '../../../bench-results');
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${result.startedAt.replace(/[:.]/g, '-')}.json`);
  const replacer = (_k: string, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : v);
  fs.writeFileSync(file, `${JSON.stringify(result, replacer, 2)}\n`);
  return file;
}
