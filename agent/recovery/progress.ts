/**
 * The download's progress display: bytes, rate and ETA. On a TTY one line rewritten in place a few times a
 * second; otherwise a plain line every `plainIntervalMs` (journals, CI logs, pipes).
 */
import { formatBytes } from '../../shared/units';

export interface ProgressOutput {
  write(text: string): unknown;
  isTTY?: boolean;
}

export interface ProgressOptions {
  /** bytes of the whole job */
  totalBytes: number;
  out: ProgressOutput;
  label?: string;
  ttyIntervalMs?: number;
  plainIntervalMs?: number;
  now?: () => number;
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '--:--';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

export interface ProgressState {
  label: string;
  doneBytes: number;
  totalBytes: number;
  /** bytes per second transferred in this run (0 when unknown) */
  rate: number;
  file?: string;
}

export function formatProgress(s: ProgressState): string {
  const pct = s.totalBytes > 0 ? Math.floor((100 * s.doneBytes) / s.totalBytes) : 100;
  const eta = s.rate > 0 ? formatDuration((s.totalBytes - s.doneBytes) / s.rate) : '--:--';
  const rate = s.rate > 0 ? `${formatBytes(s.rate)}/s` : '-';
  const file = s.file ? `  ${s.file}` : '';
  return `${s.label} ${formatBytes(s.doneBytes)} / ${formatBytes(s.totalBytes)} (${pct}%)  ${rate}  ETA ${eta}${file}`;
}

export class Progress {
  private done = 0;
  private transferred = 0;
  private readonly started: number;
  private lastDraw = Number.NEGATIVE_INFINITY;
  private file?: string;
  private readonly tty: boolean;
  private readonly now: () => number;
  private drawnWidth = 0;

  constructor(private readonly opts: ProgressOptions) {
    this.now = opts.now ?? Date.now;
    this.started = this.now();
    this.tty = opts.out.isTTY === true;
  }

  /** bytes already present from an earlier run (counted as done, not in the rate) */
  skip(n: number): void {
    this.done += n;
  }

  /** bytes that arrived in this run */
  add(n: number): void {
    this.done += n;
    this.transferred += n;
    this.maybeDraw();
  }

  setFile(file: string): void {
    this.file = file;
    this.maybeDraw();
  }

  /** bytes that arrived in this run so far */
  get transferredBytes(): number {
    return this.transferred;
  }

  private rate(): number {
    const secs = (this.now() - this.started) / 1000;
    return secs > 0 ? this.transferred / secs : 0;
  }

  private state(): ProgressState {
    return {
      label: this.opts.label ?? 'download',
      doneBytes: this.done,
      totalBytes: this.opts.totalBytes,
      rate: this.rate(),
      file: this.file,
    };
  }

  private maybeDraw(): void {
    const interval = this.tty ? (this.opts.ttyIntervalMs ?? 200) : (this.opts.plainIntervalMs ?? 10_000);
    const t = this.now();
    if (t - this.lastDraw < interval) return;
    this.lastDraw = t;
    this.draw(false);
  }

  private draw(final: boolean): void {
    const line = formatProgress(this.state());
    if (this.tty) {
      const pad = Math.max(0, this.drawnWidth - line.length);
      this.drawnWidth = line.length;
      this.opts.out.write(`\r${line}${' '.repeat(pad)}${final ? '\n' : ''}`);
    } else {
      this.opts.out.write(`${line}\n`);
    }
  }

  /** the last line (ends the updating line on a TTY) */
  finish(): void {
    this.file = undefined;
    this.draw(true);
  }
}
