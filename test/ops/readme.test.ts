/**
 * README.md's configuration reference cannot drift: its option rows (name and default) must be exactly
 * those of the config schemas, each with a description. PGFERRY_UPDATE_README=1 rewrites the rows from the
 * schemas, keeping the descriptions (new options get "TODO", which still fails).
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { agentOptionRows, type OptionRow, serverOptionRows } from '../support/config-reference';

const README = path.resolve(__dirname, '../../README.md');

interface Block {
  role: 'server' | 'agent';
  start: number;
  end: number;
  rows: { option: string; default: string; meaning: string }[];
}

function block(text: string, role: 'server' | 'agent'): Block {
  const startMark = `<!-- config-reference:${role}:start -->`;
  const endMark = `<!-- config-reference:${role}:end -->`;
  const start = text.indexOf(startMark);
  const end = text.indexOf(endMark);
  if (start < 0 || end < start) throw new Error(`README.md lacks the ${startMark} … ${endMark} block`);
  const rows = text
    .slice(start + startMark.length, end)
    .split('\n')
    .filter((l) => /^\| `/.test(l))
    .map((l) => {
      // a cell may hold an escaped "\\|"; padding (if a formatter aligns the columns) is trimmed
      const cells = l
        .slice(1, -1)
        .split(/(?<!\\)\|/)
        .map((c) => c.trim());
      return {
        option: cells[0].replace(/^`|`$/g, ''),
        default: cells[1],
        meaning: cells.slice(2).join(' | '),
      };
    });
  return { role, start: start + startMark.length, end, rows };
}

function table(expected: OptionRow[], b: Block): string {
  const meanings = new Map(b.rows.map((r) => [r.option, r.meaning]));
  const lines = expected.map(
    (r) => `| \`${r.option}\` | ${r.default} | ${meanings.get(r.option) || 'TODO'} |`,
  );
  return `\n| option | default | meaning |\n| --- | --- | --- |\n${lines.join('\n')}\n`;
}

describe.each([
  ['server', serverOptionRows],
  ['agent', agentOptionRows],
] as const)('the %s.yaml reference in README.md', (role, expectedRows) => {
  it('lists every option of the schema with its default and a description', () => {
    let text = fs.readFileSync(README, 'utf8');
    const expected = expectedRows();
    let b = block(text, role);
    if (process.env.PGFERRY_UPDATE_README) {
      text = text.slice(0, b.start) + table(expected, b) + text.slice(b.end);
      fs.writeFileSync(README, text);
      execFileSync(path.resolve(__dirname, '../../node_modules/.bin/biome'), ['format', '--write', README]);
      text = fs.readFileSync(README, 'utf8');
      b = block(text, role);
    }
    const hint =
      'run PGFERRY_UPDATE_README=1 npx jest test/ops/readme to rewrite the rows, then describe new options';
    expect({ rows: b.rows.map((r) => [r.option, r.default]), hint }).toEqual({
      rows: expected.map((r) => [r.option, r.default]),
      hint,
    });
    expect(b.rows.filter((r) => r.meaning === '' || r.meaning === 'TODO').map((r) => r.option)).toEqual([]);
  });
});
