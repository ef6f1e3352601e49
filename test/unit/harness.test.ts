import { createDatabase, dropDatabase, query, sharedClusters, uniqueName } from '../harness/db';

describe('test harness', () => {
  it('gives a primary with wal_level=logical and a fresh database that is dropped afterwards', async () => {
    const { primary } = sharedClusters();
    const name = uniqueName('harness');
    const url = await createDatabase(primary, name);
    const rows = await query<{ wal_level: string }>(url, 'SHOW wal_level');
    expect(rows[0].wal_level).toBe('logical');
    await dropDatabase(primary, name);
    const left = await query(primary.url(), 'SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    expect(left).toHaveLength(0);
  });
});
