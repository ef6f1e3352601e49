/**
 * Replica databases on the backup-side cluster: connecting with the session settings the applier relies on,
 * creating them, and swapping a freshly synced copy into place (the old one is kept until the copy completes).
 */
import { Client } from 'pg';
import { PgferryError } from '../../shared/errors';
import { TEXT_SESSION_OPTIONS } from '../../shared/pg-text';
import { replicaUrlFor } from '../../shared/config/server-config';
import { quoteIdent } from './sql';
import { readReplicaState } from './metadata';
import { closeQuietly } from '../../shared/pg-close';

/** Text values compare and round-trip exactly (same settings as the agent's sessions); commits are durable. */
const SESSION_OPTIONS = `${TEXT_SESSION_OPTIONS} -c synchronous_commit=on`;

export async function connectReplica(url: string, appName = 'pgferry-server'): Promise<Client> {
  const c = new Client({ connectionString: url, options: SESSION_OPTIONS, application_name: appName });
  try {
    await c.connect();
  } catch (e) {
    throw new PgferryError(
      'REPLICA_UNAVAILABLE',
      `cannot connect to the replica database: ${(e as Error).message}`,
      { cause: e },
    );
  }
  c.on('error', () => undefined);
  return c;
}

export async function withAdmin<T>(adminUrl: string, fn: (c: Client) => Promise<T>): Promise<T> {
  const c = await connectReplica(adminUrl, 'pgferry-admin');
  try {
    return await fn(c);
  } finally {
    await closeQuietly(c);
  }
}

export async function databaseExists(admin: Client, name: string): Promise<boolean> {
  const r = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
  return (r.rowCount ?? 0) > 0;
}

export const syncDatabaseName = (db: string): string => `${db}__sync`;
const oldDatabaseName = (db: string): string => `${db}__old`;

export async function dropDatabase(admin: Client, name: string): Promise<void> {
  await admin.query(`DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE)`);
}

export async function recreateDatabase(admin: Client, name: string): Promise<void> {
  await dropDatabase(admin, name);
  await admin.query(`CREATE DATABASE ${quoteIdent(name)} TEMPLATE template0 ENCODING 'UTF8'`);
}

async function terminate(admin: Client, name: string): Promise<void> {
  await admin.query(
    'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()',
    [name],
  );
}

async function rename(admin: Client, from: string, to: string): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    await terminate(admin, from);
    try {
      await admin.query(`ALTER DATABASE ${quoteIdent(from)} RENAME TO ${quoteIdent(to)}`);
      return;
    } catch (e) {
      // a connection may slip in between terminate and rename: try a few times
      if (attempt >= 20 || !/being accessed by other users/.test((e as Error).message)) throw e;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

/**
 * Puts the completed copy `<db>__sync` in place of `<db>`: old → `<db>__old`, sync → `<db>`, drop old.
 * Every step is restartable: `recoverSwap` finishes an interrupted swap.
 */
export async function swapInSyncedDatabase(adminUrl: string, db: string): Promise<void> {
  await withAdmin(adminUrl, async (admin) => {
    await dropDatabase(admin, oldDatabaseName(db));
    if (await databaseExists(admin, db)) await rename(admin, db, oldDatabaseName(db));
    await rename(admin, syncDatabaseName(db), db);
    await dropDatabase(admin, oldDatabaseName(db));
  });
}

/** Called at start: finishes a swap interrupted by a crash, or restores the old copy if the new one was incomplete. */
export async function recoverSwap(adminUrl: string, db: string): Promise<void> {
  await withAdmin(adminUrl, async (admin) => {
    const hasDb = await databaseExists(admin, db);
    const hasSync = await databaseExists(admin, syncDatabaseName(db));
    const hasOld = await databaseExists(admin, oldDatabaseName(db));
    if (!hasDb && hasSync && (await syncComplete(adminUrl, syncDatabaseName(db)))) {
      await rename(admin, syncDatabaseName(db), db);
    } else if (!hasDb && hasOld) {
      await rename(admin, oldDatabaseName(db), db);
    }
    if (await databaseExists(admin, db)) await dropDatabase(admin, oldDatabaseName(db));
  });
}

async function syncComplete(adminUrl: string, name: string): Promise<boolean> {
  const c = await connectReplica(replicaUrlFor(adminUrl, name));
  try {
    const st = await readReplicaState(c);
    return st?.syncCompletedAt != null;
  } finally {
    await closeQuietly(c);
  }
}
