/** `pgferry rotate [--dry-run]`: applies retention and the free-space rule now, printing what and why. */
import type { Command } from 'commander';
import { formatBytes } from '../../shared/units';
import type { RotationResult } from '../snapshot/retention';
import { openSnapshotService } from './snapshot';

function print(line: string): void {
  process.stdout.write(`${line}\n`);
}

function percent(free: number, total: number): string {
  return total > 0 ? `${((free / total) * 100).toFixed(1)} %` : '-';
}

export function describeRotation(r: RotationResult): string[] {
  const verb = r.dryRun ? 'would delete' : 'deleted';
  const lines: string[] = [];
  for (const p of r.leftovers)
    lines.push(`${r.dryRun ? 'would remove' : 'removed'} leftover partial folder ${p}`);
  for (const d of r.deletions)
    lines.push(`${verb} ${d.source}/${d.id}: ${d.reason} (frees about ${formatBytes(d.freedBytes)})`);
  const p = r.policy;
  const rules = `retentionDays ${p.retentionDays || 'off'}, minFreeBytes ${formatBytes(p.minFreeBytes)}, minFreePercent ${p.minFreePercent} %`;
  if (!r.deletions.length) lines.push(`nothing to delete (${rules})`);
  const after = r.dryRun ? 'estimated after' : 'after';
  lines.push(
    `free space: ${formatBytes(r.freeBytesBefore)} before, ${formatBytes(r.freeBytesAfter)} ${after} ` +
      `(${percent(r.freeBytesAfter, r.totalBytes)} of ${formatBytes(r.totalBytes)})`,
  );
  if (r.shortfall) lines.push(`warning: ${r.shortfall}`);
  for (const pr of r.problems)
    lines.push(`warning: unreadable snapshot folder left alone: ${pr.path}: ${pr.problem}`);
  return lines;
}

export function registerRotate(program: Command): void {
  program
    .command('rotate')
    .description('apply retention (retentionDays) and the free-space rule (minFreeBytes, minFreePercent) now')
    .requiredOption('-c, --config <file>', 'server config (YAML)')
    .option('-n, --dry-run', 'only print what would be deleted and why')
    .option('--json', 'print the result as JSON')
    .addHelpText(
      'after',
      `
Deletes snapshots older than retentionDays, then, while free space is below minFreeBytes or
minFreePercent, the oldest snapshot of any source. The newest snapshot of each source is always kept.

Examples:
  pgferry rotate --config /etc/pgferry/server.yaml --dry-run
  pgferry rotate --config /etc/pgferry/server.yaml --json
`,
    )
    .action(async (opts: { config: string; dryRun?: boolean; json?: boolean }) => {
      const service = openSnapshotService(opts.config);
      const r = await service.rotate({ dryRun: opts.dryRun === true });
      if (opts.json) print(JSON.stringify(r, null, 2));
      else for (const line of describeRotation(r)) print(line);
    });
}
