/**
 * The refusals of a recovery (guarantee 7), as pure checks that each say what to do instead. They run before
 * the download (so nobody waits an hour for a refusal) and again just before the restore.
 */
import { PgferryError } from '../../shared/errors';
import { MANIFEST_FORMAT_VERSION, type SnapshotManifest } from '../../shared/snapshot/manifest';
import { PGFERRY_VERSION } from '../../shared/version';

export interface TargetFacts {
  database: string;
  /** false when the database does not exist yet (it will be created) */
  exists: boolean;
  /** qualified names of the user tables already there */
  userTables: string[];
  /** the target server's PostgreSQL major version */
  serverMajor: number;
}

export interface PreflightOptions {
  /** the application version this installation runs (--app-version) */
  appVersion?: string;
  force: boolean;
}

/** Refuses a manifest whose format this pgferry cannot read. `raw` is the parsed JSON, before validation. */
export function checkFormatVersion(raw: unknown, id: string): void {
  const obj = typeof raw === 'object' && raw !== null ? (raw as Record<string, unknown>) : {};
  const v = obj.formatVersion;
  if (v === MANIFEST_FORMAT_VERSION) return;
  const madeBy = typeof obj.pgferryVersion === 'string' ? obj.pgferryVersion : 'unknown';
  throw new PgferryError(
    'RECOVERY_REFUSED',
    `snapshot ${id} has manifest format ${JSON.stringify(v ?? null)}; pgferry ${PGFERRY_VERSION} reads format ${MANIFEST_FORMAT_VERSION} only`,
    {
      hint: `recover with the pgferry version that made the snapshot (${madeBy}) or a newer one`,
      details: { formatVersion: v ?? null },
    },
  );
}

export function checkAppVersion(m: Pick<SnapshotManifest, 'id' | 'appVersion'>, wanted?: string): void {
  if (wanted === undefined || m.appVersion === wanted) return;
  const made = m.appVersion === null ? 'no application version' : `application version "${m.appVersion}"`;
  throw new PgferryError(
    'RECOVERY_REFUSED',
    `snapshot ${m.id} was made for ${made}, but this installation is application version "${wanted}" (--app-version)`,
    {
      hint:
        m.appVersion === null
          ? `pick a snapshot that records version "${wanted}" (pgferry recover --list shows each snapshot's version), or leave out --app-version to restore it anyway`
          : `pick a snapshot of version "${wanted}" (pgferry recover --list shows each snapshot's version), or install application version "${m.appVersion}" and recover with --app-version "${m.appVersion}"`,
      details: { snapshotAppVersion: m.appVersion, appVersion: wanted },
    },
  );
}

export function checkPgMajor(m: Pick<SnapshotManifest, 'id' | 'pgMajor'>, serverMajor: number): void {
  if (m.pgMajor <= serverMajor) return;
  throw new PgferryError(
    'RECOVERY_REFUSED',
    `snapshot ${m.id} comes from PostgreSQL ${m.pgMajor}, but the target server runs PostgreSQL ${serverMajor}`,
    {
      hint: `restore into a PostgreSQL ${m.pgMajor} (or newer) server, or pick a snapshot made with PostgreSQL ${serverMajor} or older`,
      details: { snapshotPgMajor: m.pgMajor, targetPgMajor: serverMajor },
    },
  );
}

export function checkTargetEmpty(target: TargetFacts, force: boolean): void {
  if (!target.exists || target.userTables.length === 0 || force) return;
  const n = target.userTables.length;
  const shown = target.userTables.slice(0, 5).join(', ') + (n > 5 ? ', …' : '');
  throw new PgferryError(
    'RECOVERY_REFUSED',
    `the target database "${target.database}" is not empty: it has ${n} user table${n === 1 ? '' : 's'} (${shown})`,
    {
      hint: `restore into a new or empty database (--target with another database name; it is created), or add --force to drop "${target.database}" with everything in it and restore in its place`,
      details: { database: target.database, userTables: n },
    },
  );
}

/** Every refusal that depends on the manifest's contents and on the target. */
export function preflight(m: SnapshotManifest, target: TargetFacts, opts: PreflightOptions): void {
  checkAppVersion(m, opts.appVersion);
  checkPgMajor(m, target.serverMajor);
  checkTargetEmpty(target, opts.force);
}
