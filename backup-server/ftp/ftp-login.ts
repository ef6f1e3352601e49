/**
 * FTP login decisions: one user, a password checked in constant time against the stored hash, failures
 * throttled per remote address. Unknown users (anonymous included) are checked against a decoy hash of the
 * same cost, so that the reply and its timing are the same as for a wrong password: nothing tells a caller
 * whether a user exists.
 */
import { randomBytes } from 'node:crypto';
import { type PasswordHash, verifyPassword } from '../../shared/auth/password';
import { LoginThrottle } from '../../shared/auth/throttle';

/** Failures older than this no longer count towards the lock (the ftp section has no window setting). */
export const DEFAULT_FAILURE_WINDOW_SECONDS = 60;

export const LOGIN_INCORRECT = 'Login incorrect: check the FTP user and password';
export const LOGIN_THROTTLED =
  'Too many failed logins from your address: wait a while, then check the password';
export const TLS_REQUIRED = 'TLS required: reconnect and send AUTH TLS first (explicit FTPS)';

/** The error a refused login is rejected with (ftp-srv replies "530 <message>"). */
export class FtpLoginRefused extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FtpLoginRefused';
  }
}

export interface FtpLoginOptions {
  user: string;
  passwordHash: PasswordHash;
  /** failures within the window before an address is locked out */
  maxFailures: number;
  lockSeconds: number;
  failureWindowSeconds?: number;
  now?: () => number;
}

export type LoginDecision =
  | { tag: 'accepted' }
  | { tag: 'refused'; reason: 'invalid' | 'throttled'; message: string; retryAfterMs: number };

export class FtpAuthenticator {
  private readonly throttle: LoginThrottle;
  /** same KDF cost as the real hash, random keys: an unknown user costs exactly one real check */
  private readonly decoy: PasswordHash;

  constructor(private readonly opts: FtpLoginOptions) {
    this.throttle = new LoginThrottle({
      maxFailures: opts.maxFailures,
      windowMs: (opts.failureWindowSeconds ?? DEFAULT_FAILURE_WINDOW_SECONDS) * 1000,
      lockMs: opts.lockSeconds * 1000,
      now: opts.now,
    });
    const h = opts.passwordHash;
    this.decoy = {
      N: h.N,
      r: h.r,
      p: h.p,
      salt: randomBytes(h.salt.length || 16),
      storedKey: randomBytes(h.storedKey.length || 32),
      serverKey: randomBytes(h.serverKey.length || 32),
    };
  }

  /** Decides one login attempt from `address`; records the outcome for throttling. */
  check(address: string, username: string, password: string): LoginDecision {
    const retryAfterMs = this.throttle.retryAfterMs(address);
    if (retryAfterMs > 0)
      return { tag: 'refused', reason: 'throttled', message: LOGIN_THROTTLED, retryAfterMs };
    const knownUser = username === this.opts.user;
    const passwordOk = verifyPassword(password, knownUser ? this.opts.passwordHash : this.decoy);
    if (knownUser && passwordOk) {
      this.throttle.recordSuccess(address);
      return { tag: 'accepted' };
    }
    this.throttle.recordFailure(address);
    const lockedFor = this.throttle.retryAfterMs(address);
    return { tag: 'refused', reason: 'invalid', message: LOGIN_INCORRECT, retryAfterMs: lockedFor };
  }
}
