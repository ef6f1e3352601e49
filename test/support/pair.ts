/**
 * The usual replication test rig: a fresh source database on the shared primary (seeded), a backup server
 * and an agent in-process, waited on until the agent streams; `stop()` undoes all of it.
 */
import type { Agent } from '../../agent/agent';
import type { BackupServer } from '../../backup-server/server';
import type { LogEntry } from '../../shared/log';
import { createDatabase, dropDatabase, sharedClusters, uniqueName, waitFor } from '../harness/db';
import {
  agentConfigFor,
  memoryLogger,
  serverConfigFor,
  startAgentInProcess,
  startServerInProcess,
  tempDir,
} from './pgferry';

export interface PairOptions {
  /** source name (also names the replica database pgferry_<name>) */
  name: string;
  /** prepares the source database before pgferry starts */
  seed?: (primaryUrl: string) => Promise<unknown>;
  agentExtra?: Record<string, unknown>;
  serverExtra?: Record<string, unknown>;
  /** started before pgferry, right after the seed (e.g. a writer that must overlap the initial copy) */
  beforeStart?: (primaryUrl: string) => void;
  /** wait until the agent streams (default true) */
  waitForStreaming?: boolean;
}

export interface Pair {
  primaryUrl: string;
  replicaUrl: string;
  server: BackupServer;
  agent: Agent;
  serverLog: LogEntry[];
  agentLog: LogEntry[];
  stop(): Promise<void>;
}

export async function startPair(o: PairOptions): Promise<Pair> {
  const { primary, backup } = sharedClusters();
  const source = {
    name: o.name,
    password: `pw-${o.name}`,
    database: uniqueName(`src_${o.name.replace(/-/g, '_')}`),
  };
  const replicaDb = `pgferry_${o.name.replace(/-/g, '_')}`;
  const primaryUrl = await createDatabase(primary, source.database);
  await o.seed?.(primaryUrl);
  o.beforeStart?.(primaryUrl);
  const s = memoryLogger({ role: 'server' });
  const a = memoryLogger({ role: 'agent' });
  const server = await startServerInProcess(
    await serverConfigFor(backup, [source], tempDir(o.name), o.serverExtra),
    s.log,
  );
  const agent = startAgentInProcess(agentConfigFor(primary, source, server.port, o.agentExtra), a.log);
  const stop = async () => {
    await agent.stop();
    await server.stop();
    await dropDatabase(primary, source.database);
    await dropDatabase(backup, replicaDb);
  };
  try {
    if (o.waitForStreaming !== false)
      await waitFor('the agent to stream', () => agent.st.phase === 'streaming', 60_000);
  } catch (e) {
    await stop();
    throw e;
  }
  return {
    primaryUrl,
    replicaUrl: backup.url(replicaDb),
    server,
    agent,
    serverLog: s.entries,
    agentLog: a.entries,
    stop,
  };
}
