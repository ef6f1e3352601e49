/**
 * The schema fingerprint decides whether a snapshot dumps the schema again or hard-links the previous
 * one's files: every kind of DDL a dump shows must change it (a missed one would restore an old schema),
 * and what a schema-only dump does not show (row data, statistics, vacuum) should leave it alone.
 */
import type { Client } from 'pg';
import { schemaFingerprint } from '../../backup-server/snapshot/schema-fingerprint';
import { createDatabase, dropDatabase, sharedClusters, uniqueName, withClient } from '../harness/db';

const { backup } = sharedClusters();
const dbName = uniqueName('fingerprint');
let url: string;

beforeAll(async () => {
  url = await createDatabase(backup, dbName);
  await withClient(url, (c) =>
    c.query(`CREATE TABLE t (id int PRIMARY KEY, val int, note text);
      CREATE INDEX t_val ON t (val);
      CREATE VIEW v AS SELECT id, val FROM t;
      CREATE SEQUENCE s;
      INSERT INTO t SELECT i, i, md5(i::text) FROM generate_series(1, 1000) i;`),
  );
});

afterAll(async () => {
  await dropDatabase(backup, dbName);
});

/** as the snapshot reads it: inside a REPEATABLE READ transaction */
async function fingerprint(c: Client): Promise<string> {
  await c.query('BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY');
  try {
    return await schemaFingerprint(c, 'salt');
  } finally {
    await c.query('COMMIT');
  }
}

const changesDump: [string, string][] = [
  ['a comment', `COMMENT ON TABLE t IS 'kept'`],
  ['a renamed column', 'ALTER TABLE t RENAME COLUMN note TO remark'],
  ['a column type', 'ALTER TABLE t ALTER COLUMN remark TYPE varchar(64)'],
  ['a dropped index (rows deleted only)', 'DROP INDEX t_val'],
  ['a grant', 'GRANT SELECT ON t TO PUBLIC'],
  ['a replaced view', 'CREATE OR REPLACE VIEW v AS SELECT id, val, 1 AS one FROM t'],
  ['a sequence option', 'ALTER SEQUENCE s INCREMENT BY 5'],
  ['a column default', 'ALTER TABLE t ALTER COLUMN val SET DEFAULT 3'],
  ['a dropped column', 'ALTER TABLE t DROP COLUMN remark'],
];

const leavesDump: [string, string][] = [
  ['row changes', 'UPDATE t SET val = val + 1 WHERE id <= 100; DELETE FROM t WHERE id > 900'],
  ['statistics', 'ANALYZE t'],
  ['a vacuum', 'VACUUM t'],
];

describe('the schema fingerprint', () => {
  it.each(changesDump)('changes with %s', async (_what, ddl) => {
    await withClient(url, async (c) => {
      const before = await fingerprint(c);
      await c.query(ddl);
      expect(await fingerprint(c)).not.toBe(before);
    });
  });

  it.each(leavesDump)('stays the same after %s', async (_what, sql) => {
    await withClient(url, async (c) => {
      const before = await fingerprint(c);
      await c.query(sql);
      expect(await fingerprint(c)).toBe(before);
    });
  });
});
