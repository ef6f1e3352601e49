/**
 * Acceptance (issue 6, item 5): the README's demo command (`npm run demo`, i.e. node dist/shared/cli/main.js
 * demo) exits 0, prints the comparison's result, stays under two minutes, and leaves nothing behind.
 */
import * as fs from 'node:fs';
import { spawnCli } from '../support/pgferry';

it('runs the whole system on this machine, prints the comparison, and cleans up', async () => {
  const t0 = Date.now();
  const demo = spawnCli(['demo', '--seconds', '3']);
  const code = await demo.exited;
  const out = demo.output();
  expect({ code, tail: code === 0 ? '' : out.slice(-3000) }).toEqual({ code: 0, tail: '' });
  expect(Date.now() - t0).toBeLessThan(120_000);
  for (const step of ['1/10', '4/10', '6/10', '7/10', '8/10', '9/10', '10/10'])
    expect(out).toContain(` ${step} `);
  expect(out).toMatch(/source monitoring is LIVE/);
  expect(out).toMatch(/catalog\.json/);
  expect(out).toMatch(/public\.samples +\d+ rows {2}md5 \w+ {2}= +\d+ rows {2}md5 \w+ {2}identical/);
  expect(out).toMatch(/RESULT: the restored database is identical to the primary \(3 tables, \d+ rows/);
  expect(out).toContain('Snapshots completed today: 1');
  expect(out).toMatch(/source monitoring is CLOSE/);
  const dir = /in (\/\S+pgferry-demo-\w+) \(Ctrl-C/.exec(out)?.[1] ?? '';
  expect(dir).not.toBe('');
  expect(fs.existsSync(dir)).toBe(false);
}, 150_000);
