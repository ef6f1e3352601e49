/**
 * pg_dump's plain output is meant for psql: since 15.14 it wraps the script in `\restrict KEY` /
 * `\unrestrict KEY` meta-commands, which the server cannot run. This leaves plain SQL.
 */
export function sqlFromPgDump(script: string): string {
  return script
    .split('\n')
    .filter((line) => !/^\\(restrict|unrestrict)\b/.test(line))
    .join('\n');
}
