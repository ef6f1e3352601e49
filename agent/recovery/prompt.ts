/** Questions on a terminal: a hidden password, a plain answer, and the snapshot pick. */
import { Writable } from 'node:stream';
import * as readline from 'node:readline/promises';
import { PgferryError } from '../../shared/errors';
import type { CatalogEntry } from '../../shared/snapshot/manifest';
import { formatCatalogTable } from './catalog';

export interface PromptIo {
  input: NodeJS.ReadableStream;
  output: NodeJS.WritableStream;
}

/** Asks a question; the answer is not echoed when `hidden`. Ctrl-C or end of input cancels. */
export async function ask(io: PromptIo, question: string, hidden = false): Promise<string> {
  let mute = false;
  const out = new Writable({
    write(chunk: Buffer, _enc, cb) {
      if (!mute) io.output.write(chunk);
      cb();
    },
  });
  const rl = readline.createInterface({ input: io.input, output: out, terminal: true });
  mute = hidden;
  const answer = rl.question('');
  io.output.write(question);
  const closed = new Promise<never>((_, reject) =>
    rl.once('close', () => reject(new PgferryError('USAGE', 'cancelled at the prompt'))),
  );
  const sigint = new Promise<never>((_, reject) =>
    rl.once('SIGINT', () => reject(new PgferryError('USAGE', 'cancelled at the prompt'))),
  );
  try {
    return (await Promise.race([answer, closed, sigint])).trim();
  } finally {
    mute = false;
    if (hidden) io.output.write('\n');
    rl.removeAllListeners('close');
    rl.close();
  }
}

/** Shows the snapshots and asks for one by its number (Enter: the newest). */
export async function pickSnapshot(io: PromptIo, entries: CatalogEntry[]): Promise<CatalogEntry> {
  io.output.write(`${formatCatalogTable(entries)}\n\n`);
  for (let attempt = 0; attempt < 3; attempt++) {
    const a = await ask(io, `Snapshot to restore (1-${entries.length}, Enter for 1, the newest): `);
    if (a === '') return entries[0];
    const byId = entries.find((e) => e.id === a);
    if (byId) return byId;
    const n = Number(a);
    if (Number.isInteger(n) && n >= 1 && n <= entries.length) return entries[n - 1];
    io.output.write(`"${a}" is not a number from 1 to ${entries.length}\n`);
  }
  throw new PgferryError('USAGE', 'no snapshot chosen', {
    hint: 'pass --latest or --snapshot ID (pgferry recover --list shows the ids)',
  });
}
