/**
 * When the agent asks the primary for transactions while they run, and what it sends to start the
 * stream: pgoutput protocol 2 with streaming only when the config wants it, the backup server speaks link
 * protocol 3 and the primary is PostgreSQL 14 or later; protocol 1 otherwise.
 */
import type { Client } from 'pg';
import { PgoutputChangesPlugin, streamsInProgress } from '../../agent/change-stream';
import { PROTOCOL_VERSIONS, STREAMED_TRANSACTIONS_VERSION } from '../../shared/protocol/messages';

/** the START_REPLICATION text the plugin sends on a stand-in client */
async function startText(streaming: boolean, publication = 'pgferry'): Promise<string> {
  const sent: string[] = [];
  const client = { query: async (text: string) => sent.push(text) } as unknown as Client;
  await new PgoutputChangesPlugin(publication, streaming).start(client, 'pgferry_slot', '0/16B3748');
  return sent[0];
}

describe('streaming of transactions in progress', () => {
  it('needs the config, link protocol 3 and PostgreSQL 14 or later', () => {
    const newest = Math.max(...PROTOCOL_VERSIONS);
    expect(newest).toBeGreaterThanOrEqual(STREAMED_TRANSACTIONS_VERSION);
    expect(streamsInProgress(true, newest, 15)).toBe(true);
    expect(streamsInProgress(true, newest, 14)).toBe(true);
    expect(streamsInProgress(false, newest, 15)).toBe(false);
    expect(streamsInProgress(true, STREAMED_TRANSACTIONS_VERSION - 1, 15)).toBe(false);
    expect(streamsInProgress(true, newest, 13)).toBe(false);
  });

  it('starts pgoutput protocol 2 with streaming on, or protocol 1 without', async () => {
    expect(await startText(true)).toBe(
      `START_REPLICATION SLOT "pgferry_slot" LOGICAL 0/16B3748 (proto_version '2', streaming 'on', publication_names 'pgferry', messages 'false')`,
    );
    expect(await startText(false)).toBe(
      `START_REPLICATION SLOT "pgferry_slot" LOGICAL 0/16B3748 (proto_version '1', publication_names 'pgferry', messages 'false')`,
    );
  });
});
