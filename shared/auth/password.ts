/**
 * Password hashes and a SCRAM-style challenge-response (RFC 5802 shape, scrypt as the key function).
 *
 * The stored form keeps only what a verifier needs: the salt, the scrypt cost, StoredKey = SHA256(ClientKey)
 * and ServerKey. It is not enough to log in (the ClientKey cannot be derived from it), and the password
 * never crosses the wire: the client proves knowledge with ClientKey XOR HMAC(StoredKey, AuthMessage).
 *
 *   scram-scrypt$<N>$<r>$<p>$<salt b64>$<StoredKey b64>$<ServerKey b64>
 */
import { createHash, createHmac, randomBytes, scryptSync, timingSafeEqual } from 'node:crypto';

export const HASH_PREFIX = 'scram-scrypt';

export interface KdfParams {
  N: number;
  r: number;
  p: number;
  salt: Buffer;
}

export interface PasswordHash extends KdfParams {
  storedKey: Buffer;
  serverKey: Buffer;
}

const DEFAULT_COST = { N: 16384, r: 8, p: 1 };

function saltedPassword(password: string, kdf: KdfParams): Buffer {
  return scryptSync(password.normalize('NFKC'), kdf.salt, 32, {
    N: kdf.N,
    r: kdf.r,
    p: kdf.p,
    maxmem: 256 * 1024 * 1024,
  });
}

const hmac = (key: Buffer, data: string | Buffer): Buffer => createHmac('sha256', key).update(data).digest();
const sha256 = (data: Buffer): Buffer => createHash('sha256').update(data).digest();

function keys(password: string, kdf: KdfParams) {
  const salted = saltedPassword(password, kdf);
  const clientKey = hmac(salted, 'Client Key');
  return { clientKey, storedKey: sha256(clientKey), serverKey: hmac(salted, 'Server Key') };
}

export function hashPassword(password: string, cost: Partial<Omit<KdfParams, 'salt'>> = {}): string {
  if (password.length === 0) throw new Error('the password is empty: choose a non-empty password');
  const kdf: KdfParams = { ...DEFAULT_COST, ...cost, salt: randomBytes(16) };
  const { storedKey, serverKey } = keys(password, kdf);
  return [
    HASH_PREFIX,
    kdf.N,
    kdf.r,
    kdf.p,
    kdf.salt.toString('base64'),
    storedKey.toString('base64'),
    serverKey.toString('base64'),
  ].join('$');
}

export function isPasswordHash(text: string): boolean {
  try {
    parsePasswordHash(text);
    return true;
  } catch {
    return false;
  }
}

export function parsePasswordHash(text: string): PasswordHash {
  const parts = text.trim().split('$');
  if (parts.length !== 7 || parts[0] !== HASH_PREFIX) {
    throw new Error(
      `not a pgferry password hash: expected "${HASH_PREFIX}$N$r$p$salt$storedKey$serverKey" as printed by "pgferry hash-password"`,
    );
  }
  const [N, r, p] = parts.slice(1, 4).map(Number);
  if (![N, r, p].every((n) => Number.isInteger(n) && n > 0))
    throw new Error('password hash has an invalid cost');
  return {
    N,
    r,
    p,
    salt: Buffer.from(parts[4], 'base64'),
    storedKey: Buffer.from(parts[5], 'base64'),
    serverKey: Buffer.from(parts[6], 'base64'),
  };
}

/** For protocols that receive the password itself (FTP): constant-time check against the stored hash. */
export function verifyPassword(password: string, hash: PasswordHash): boolean {
  const { storedKey } = keys(password, hash);
  return storedKey.length === hash.storedKey.length && timingSafeEqual(storedKey, hash.storedKey);
}

/** Client side: the proof for one AuthMessage. */
export function clientProof(password: string, kdf: KdfParams, authMessage: string): Buffer {
  const { clientKey, storedKey } = keys(password, kdf);
  const signature = hmac(storedKey, authMessage);
  return xor(clientKey, signature);
}

/** Client side: the signature the server must send back, proving it holds the hash too. */
export function expectedServerSignature(password: string, kdf: KdfParams, authMessage: string): Buffer {
  return hmac(keys(password, kdf).serverKey, authMessage);
}

/** Server side: constant-time check of a client proof. */
export function verifyClientProof(hash: PasswordHash, authMessage: string, proof: Buffer): boolean {
  if (proof.length !== hash.storedKey.length) return false;
  const clientKey = xor(proof, hmac(hash.storedKey, authMessage));
  return timingSafeEqual(sha256(clientKey), hash.storedKey);
}

export function serverSignature(hash: PasswordHash, authMessage: string): Buffer {
  return hmac(hash.serverKey, authMessage);
}

/** A stand-in hash for unknown users, so that their failures cost the same time as a wrong password. */
export const DECOY_HASH: PasswordHash = (() => {
  const kdf = { ...DEFAULT_COST, salt: Buffer.alloc(16, 7) };
  return { ...kdf, ...keys(randomBytes(16).toString('hex'), kdf) };
})();

function xor(a: Buffer, b: Buffer): Buffer {
  const out = Buffer.alloc(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i] ^ b[i];
  return out;
}

export function safeEqual(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}
