/** The demo's running commentary: numbered steps with the time since the start, indented details. */
export class Commentary {
  private readonly started = Date.now();

  constructor(
    private readonly out: NodeJS.WritableStream = process.stdout,
    readonly totalSteps = 9,
  ) {}

  get seconds(): number {
    return (Date.now() - this.started) / 1000;
  }

  private stamp(): string {
    return `[${this.seconds.toFixed(1).padStart(5)} s]`;
  }

  /** A numbered step: "[  3.1 s] 2/9 Starting the backup server". */
  step(n: number, text: string): void {
    this.out.write(`\n${this.stamp()} ${n}/${this.totalSteps} ${text}\n`);
  }

  /** A line under the current step. */
  say(text: string): void {
    for (const line of text.split('\n')) this.out.write(`          ${line}\n`);
  }

  /** A line with its own time stamp (events as they happen). */
  event(text: string): void {
    this.out.write(`${this.stamp()}   ${text}\n`);
  }

  plain(text: string): void {
    this.out.write(`${text}\n`);
  }
}
