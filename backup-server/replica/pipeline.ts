/**
 * Sends a PipelineBatch (pipeline-batch.ts) over a node-postgres client as one custom query (a
 * Submittable, as pg-cursor and pg-copy-streams do): the whole batch is written at once, the answers are
 * counted as they come, and the query ends at the batch's single ReadyForQuery. On an error the replica
 * skips the rest of the batch up to its Sync, so nothing after the failing statement ran; the error says
 * which statement it was.
 */
import { type Connection, DatabaseError, type Submittable } from 'pg';
import { PgferryError } from '../../shared/errors';
import type { Value } from '../../shared/protocol/messages';
import type { PipelineBatch } from './pipeline-batch';

export interface PipelineResult {
  /** the rows of the last statement of the batch that returned rows (text values) */
  rows: Value[][];
}

/** the answer kinds node-postgres passes to its active query (see pg/lib/client.js) */
interface DataRowLike {
  fields: Value[];
}

const parsedByConnection = new WeakMap<object, Set<string>>();

/**
 * The names of the statements parsed on `client`'s connection, shared by everything that sends batches
 * on it (pass it to each PipelineBatch). Clear it with DEALLOCATE ALL after a failed batch.
 */
export function parsedStatements(client: object): Set<string> {
  let s = parsedByConnection.get(client);
  if (!s) {
    s = new Set();
    parsedByConnection.set(client, s);
  }
  return s;
}

const excerpt = (s: string, max = 300): string => (s.length > max ? `${s.slice(0, max)}…` : s);

export class Pipeline implements Submittable {
  readonly done: Promise<PipelineResult>;
  private readonly batch: PipelineBatch;
  private readonly bytes: Buffer;
  private readonly statements: readonly string[];
  /** statements completed so far: the one an error belongs to is the next */
  private completed = 0;
  private rows: Value[][] = [];
  private rowsOf = -1;
  private resolve!: (r: PipelineResult) => void;
  private reject!: (e: Error) => void;
  private settled = false;

  constructor(batch: PipelineBatch) {
    this.batch = batch;
    this.statements = batch.statements;
    this.bytes = batch.finish();
    this.done = new Promise((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
  }

  get statementCount(): number {
    return this.statements.length;
  }

  submit(connection: Connection): void {
    connection.stream.write(this.bytes);
  }

  handleRowDescription(): void {
    // no Describe is sent; nothing to do if one arrives
  }

  handleDataRow(msg: DataRowLike): void {
    if (this.rowsOf !== this.completed) {
      this.rows = [];
      this.rowsOf = this.completed;
    }
    this.rows.push(msg.fields);
  }

  handleCommandComplete(): void {
    this.completed++;
  }

  handleEmptyQuery(): void {
    this.completed++;
  }

  handlePortalSuspended(): void {
    // every Execute asks for all rows: never suspended
  }

  handleCopyInResponse(): void {
    // the rows already follow the COPY in the batch
  }

  handleCopyData(): void {
    // no COPY TO in a batch
  }

  handleError(err: Error): void {
    if (this.settled) return;
    this.settled = true;
    this.reject(this.describe(err));
  }

  handleReadyForQuery(): void {
    if (this.settled) return;
    this.settled = true;
    // every byte was read by the replica: the buffer can carry a later batch
    this.batch.recycle();
    this.resolve({ rows: this.rowsOf >= 0 ? this.rows : [] });
  }

  /** Which statement failed, and whether the statement failed (APPLY_FAILED) or the connection did. */
  private describe(err: Error): PgferryError {
    const db = err instanceof DatabaseError ? err : null;
    if (!db || db.severity === 'FATAL' || db.severity === 'PANIC') {
      return new PgferryError(
        'REPLICA_UNAVAILABLE',
        `the replica connection failed while applying changes: ${err.message}`,
        { cause: err },
      );
    }
    const n = this.statements.length;
    const i = Math.min(this.completed, n - 1);
    const stmt = this.statements[i] ?? '';
    const what = stmt.startsWith('COPY ') ? 'inserts' : 'changes';
    const pos = db.position ? Number(db.position) : null;
    return new PgferryError(
      'APPLY_FAILED',
      `applying ${what} on the replica failed: ${err.message} (statement ${i + 1} of ${n} in the batch: ${excerpt(stmt, 160)})`,
      {
        cause: err,
        details: {
          statement: excerpt(stmt, 2000),
          near: pos ? stmt.slice(Math.max(0, pos - 200), pos + 200) : undefined,
          detail: db.detail,
        },
      },
    );
  }
}
