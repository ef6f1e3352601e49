/**
 * The agent's side of the link: TCP or TLS (CA file or a pinned SHA-256 fingerprint), version
 * negotiation, and the challenge-response login (mutual: the server proves it holds the hash too).
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { clientProof, expectedServerSignature, safeEqual } from '../shared/auth/password';
import type { AgentConfig } from '../shared/config/agent-config';
import { PgferryError, type ErrorCode, ERROR_CODES } from '../shared/errors';
import { FramedConnection } from '../shared/protocol/connection';
import {
  type AgentMessage,
  authMessage,
  PROTOCOL_NAME,
  PROTOCOL_VERSIONS,
  type ServerMessage,
} from '../shared/protocol/messages';
import { PGFERRY_VERSION } from '../shared/version';

export type AgentConn = FramedConnection<ServerMessage, AgentMessage>;

const CONNECT_TIMEOUT_MS = 10_000;

const normalize = (fp: string) => fp.replace(/:/g, '').toUpperCase();

function openSocket(cfg: AgentConfig): Promise<net.Socket> {
  const { host, port } = cfg.server;
  const t = cfg.server.tls;
  return new Promise((resolve, reject) => {
    let socket: net.Socket;
    const timer = setTimeout(() => {
      socket.destroy();
      reject(
        new PgferryError(
          'CONNECTION_LOST',
          `no connection to ${host}:${port} within ${CONNECT_TIMEOUT_MS} ms`,
        ),
      );
    }, CONNECT_TIMEOUT_MS);
    const fail = (e: Error) => {
      clearTimeout(timer);
      reject(
        e instanceof PgferryError
          ? e
          : new PgferryError(
              'CONNECTION_LOST',
              `cannot reach the backup server at ${host}:${port}: ${e.message}`,
            ),
      );
    };
    if (t === 'off') {
      socket = net.connect({ host, port }, () => {
        clearTimeout(timer);
        resolve(socket);
      });
    } else {
      const pinned = t.fingerprint ? normalize(t.fingerprint) : null;
      const tlsSocket = tls.connect(
        {
          host,
          port,
          servername: t.serverName ?? (net.isIP(host) ? undefined : host),
          ca: t.caFile ? fs.readFileSync(t.caFile) : undefined,
          rejectUnauthorized: !pinned,
          minVersion: 'TLSv1.2',
        },
        () => {
          clearTimeout(timer);
          if (pinned) {
            const got = tlsSocket.getPeerX509Certificate()?.fingerprint256;
            if (!got || normalize(got) !== pinned) {
              tlsSocket.destroy();
              reject(
                new PgferryError(
                  'TLS_FINGERPRINT',
                  `server certificate fingerprint ${got ?? '(none)'} does not match the pinned ${t.fingerprint}`,
                ),
              );
              return;
            }
          }
          resolve(tlsSocket);
        },
      );
      socket = tlsSocket;
    }
    socket.once('error', fail);
  });
}

function serverError(m: ServerMessage): PgferryError {
  if (m.tag === 'error') {
    const code = (m.code in ERROR_CODES ? m.code : 'PROTOCOL_ERROR') as ErrorCode;
    return new PgferryError(code, `the backup server refused: ${m.message}`);
  }
  return new PgferryError(
    'PROTOCOL_ERROR',
    `unexpected "${m.tag}" from the backup server during the handshake`,
  );
}

/** Connects and logs in; resolves with an authenticated connection (frames not yet consumed). */
export async function connectToServer(cfg: AgentConfig): Promise<AgentConn> {
  const socket = await openSocket(cfg);
  socket.setNoDelay(true);
  socket.setKeepAlive(true, 10_000);
  const conn: AgentConn = new FramedConnection(socket, cfg.maxFrameBytes);
  try {
    const clientNonce = randomBytes(18).toString('base64');
    await conn.send({
      tag: 'hello',
      protocol: PROTOCOL_NAME,
      versions: [...PROTOCOL_VERSIONS],
      source: cfg.source.name,
      pgferryVersion: PGFERRY_VERSION,
      clientNonce,
    });
    const ch = (await conn.next(CONNECT_TIMEOUT_MS)).header;
    if (ch.tag !== 'challenge') throw serverError(ch);
    conn.protocolVersion = ch.version;
    const kdf = { N: ch.N, r: ch.r, p: ch.p, salt: Buffer.from(ch.salt, 'base64') };
    const msg = authMessage(cfg.source.name, clientNonce, ch.serverNonce);
    await conn.send({ tag: 'auth', proof: clientProof(cfg.serverPassword, kdf, msg).toString('base64') });
    const ok = (await conn.next(CONNECT_TIMEOUT_MS)).header;
    if (ok.tag !== 'authOk') throw serverError(ok);
    const expected = expectedServerSignature(cfg.serverPassword, kdf, msg);
    if (!safeEqual(expected, Buffer.from(ok.serverSignature, 'base64'))) {
      throw new PgferryError(
        'AUTH_FAILED',
        'the backup server could not prove it knows the password hash: wrong server?',
      );
    }
    return conn;
  } catch (e) {
    conn.destroy();
    if (cfg.server.tls === 'off' && e instanceof PgferryError && e.code === 'CONNECTION_LOST') {
      throw new PgferryError(
        'CONNECTION_LOST',
        `${e.message} (server.tls is off: if the server runs with TLS, set server.tls.fingerprint to the fingerprint it logs at start)`,
      );
    }
    throw e;
  }
}
