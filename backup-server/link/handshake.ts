/**
 * Server side of the link handshake: protocol/version negotiation, then SCRAM-style authentication
 * of one source (the password never crosses the wire), with failed logins throttled per address.
 * Unknown sources get the same challenge and the same refusal as a wrong password.
 */
import { createHmac, randomBytes } from 'node:crypto';
import type { LoginThrottle } from '../../shared/auth/throttle';
import { DECOY_HASH, serverSignature, verifyClientProof } from '../../shared/auth/password';
import type { SourceSettings } from '../../shared/config/server-config';
import { PgferryError } from '../../shared/errors';
import type { FramedConnection } from '../../shared/protocol/connection';
import {
  type AgentMessage,
  authMessage,
  negotiateVersion,
  PROTOCOL_NAME,
  PROTOCOL_VERSIONS,
  type ServerMessage,
} from '../../shared/protocol/messages';

export const HANDSHAKE_TIMEOUT_MS = 10_000;

/** unknown sources get a stable per-name salt, so a challenge never tells whether a source exists */
const DECOY_SECRET = randomBytes(32);
const decoySalt = (name: string): Buffer =>
  createHmac('sha256', DECOY_SECRET).update(name).digest().subarray(0, 16);

export interface HandshakeResult {
  source: SourceSettings;
  version: number;
  agentVersion: string;
}

async function refuse(
  conn: FramedConnection<AgentMessage, ServerMessage>,
  err: PgferryError,
): Promise<never> {
  await conn.end({ tag: 'error', code: err.code, message: err.message });
  throw err;
}

export async function serverHandshake(
  conn: FramedConnection<AgentMessage, ServerMessage>,
  sources: ReadonlyMap<string, SourceSettings>,
  throttle: LoginThrottle,
  remoteAddress: string,
): Promise<HandshakeResult> {
  const first = (await conn.next(HANDSHAKE_TIMEOUT_MS)).header;
  if (first.tag !== 'hello' || first.protocol !== PROTOCOL_NAME || !Array.isArray(first.versions)) {
    return refuse(conn, new PgferryError('PROTOCOL_ERROR', 'the first message was not a pgferry hello'));
  }
  const version = negotiateVersion(first.versions);
  if (version === null) {
    return refuse(
      conn,
      new PgferryError(
        'PROTOCOL_VERSION',
        `incompatible protocol: the agent (pgferry ${String(first.pgferryVersion)}) speaks version(s) ${first.versions.join(', ')}, this server speaks ${PROTOCOL_VERSIONS.join(', ')}`,
      ),
    );
  }
  const waitMs = throttle.retryAfterMs(remoteAddress);
  if (waitMs > 0) {
    return refuse(
      conn,
      new PgferryError(
        'AUTH_THROTTLED',
        `too many failed logins from ${remoteAddress}; retry in ${Math.ceil(waitMs / 1000)} s`,
      ),
    );
  }
  const source = sources.get(String(first.source));
  const hash = source?.passwordHash ?? { ...DECOY_HASH, salt: decoySalt(String(first.source)) };
  const serverNonce = randomBytes(18).toString('base64');
  await conn.send({
    tag: 'challenge',
    version,
    salt: hash.salt.toString('base64'),
    N: hash.N,
    r: hash.r,
    p: hash.p,
    serverNonce,
  });
  const second = (await conn.next(HANDSHAKE_TIMEOUT_MS)).header;
  if (second.tag !== 'auth' || typeof second.proof !== 'string') {
    return refuse(conn, new PgferryError('PROTOCOL_ERROR', 'expected an auth message after the challenge'));
  }
  const msg = authMessage(String(first.source), String(first.clientNonce), serverNonce);
  const ok = verifyClientProof(hash, msg, Buffer.from(second.proof, 'base64'));
  if (!ok || !source) {
    throttle.recordFailure(remoteAddress);
    return refuse(
      conn,
      new PgferryError(
        'AUTH_FAILED',
        `authentication failed for source "${String(first.source)}" from ${remoteAddress}`,
      ),
    );
  }
  throttle.recordSuccess(remoteAddress);
  await conn.send({ tag: 'authOk', serverSignature: serverSignature(hash, msg).toString('base64') });
  conn.protocolVersion = version;
  return { source, version, agentVersion: String(first.pgferryVersion) };
}
