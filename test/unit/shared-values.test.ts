import {
  clientProof,
  hashPassword,
  parsePasswordHash,
  serverSignature,
  verifyClientProof,
  verifyPassword,
} from '../../shared/auth/password';
import { LoginThrottle } from '../../shared/auth/throttle';
import { parseConfig } from '../../shared/config/load';
import { agentConfigSchema } from '../../shared/config/agent-config';
import { serverConfigSchema, resolveServerConfig } from '../../shared/config/server-config';
import { compareLsn, formatLsn, parseLsn } from '../../shared/lsn';
import { negotiateVersion } from '../../shared/protocol/messages';
import { parseBytes } from '../../shared/units';

describe('Lsn', () => {
  it('parses both PostgreSQL forms and compares numerically, not as text', () => {
    expect(parseLsn('00000000/01939990')).toBe(parseLsn('0/1939990'));
    expect(formatLsn(parseLsn('00000001/0000000A'))).toBe('1/A');
    expect(compareLsn(parseLsn('0/9'), parseLsn('0/10'))).toBe(-1);
    expect(compareLsn(parseLsn('1/0'), parseLsn('0/FFFFFFFF'))).toBe(1);
    expect(() => parseLsn('12345')).toThrow(/expected the form X\/Y/);
  });

  it('parses exactly on both sides of the fast path (high part below and above 2^21)', () => {
    expect(parseLsn('1fffff/FFFFFFFF')).toBe(0x1fffffffffffffn);
    expect(parseLsn('200000/1')).toBe(0x20000000000001n);
    expect(parseLsn('FFFFFFFF/FFFFFFFF')).toBe(0xffffffffffffffffn);
    expect(parseLsn(' 0/10 ')).toBe(0x10n);
    for (const bad of ['0/', '/1', '0/1x', '0/123456789', '123456789/0', 'g/1'])
      expect(() => parseLsn(bad)).toThrow(/expected the form X\/Y/);
  });
});

describe('passwords', () => {
  const hash = parsePasswordHash(hashPassword('s3cret', { N: 1024 }));
  it('verifies the right password and refuses a wrong one', () => {
    expect(verifyPassword('s3cret', hash)).toBe(true);
    expect(verifyPassword('s3cret ', hash)).toBe(false);
  });
  it('lets a client prove the password without sending it, and the server prove it holds the hash', () => {
    const msg = 'pgferry-auth-v1,src,a,b';
    const proof = clientProof('s3cret', hash, msg);
    expect(proof.toString('base64')).not.toContain('s3cret');
    expect(verifyClientProof(hash, msg, proof)).toBe(true);
    expect(verifyClientProof(hash, `${msg}x`, proof)).toBe(false);
    expect(verifyClientProof(hash, msg, clientProof('wrong', hash, msg))).toBe(false);
    expect(serverSignature(hash, msg)).toHaveLength(32);
  });
});

describe('login throttle', () => {
  it('locks an address after N failures in the window, and unlocks after the lock time', () => {
    let now = 0;
    const t = new LoginThrottle({ maxFailures: 3, windowMs: 1000, lockMs: 5000, now: () => now });
    t.recordFailure('a');
    t.recordFailure('a');
    expect(t.isLocked('a')).toBe(false);
    t.recordFailure('a');
    expect(t.isLocked('a')).toBe(true);
    expect(t.isLocked('b')).toBe(false);
    now = 5001;
    expect(t.isLocked('a')).toBe(false);
  });
});

describe('protocol versions', () => {
  it('picks the highest common version or none', () => {
    expect(negotiateVersion([1, 2], [1, 2, 3])).toBe(2);
    expect(negotiateVersion([7], [1])).toBeNull();
  });
});

describe('config', () => {
  it('names the field and the expected form on bad input', () => {
    expect(() =>
      parseConfig(
        agentConfigSchema,
        { source: { name: 'Bad Name', url: 'x' }, server: { host: 'h', port: 70000 } },
        'agent.yaml',
      ),
    ).toThrow(/agent\.yaml: source\.name: expected a lowercase name[\s\S]*agent\.yaml: server\.port/);
    expect(() => parseBytes('10 parsecs')).toThrow(/e\.g\. 10GiB/);
    expect(parseBytes('10GiB')).toBe(10 * 1024 ** 3);
  });
  it('fills defaults in one place and resolves secrets from the environment', () => {
    process.env.PGFERRY_SOURCE_PASSWORD_MON_1 = 'from-env';
    const cfg = resolveServerConfig(parseConfig(serverConfigSchema, { sources: [{ name: 'mon-1' }] }));
    delete process.env.PGFERRY_SOURCE_PASSWORD_MON_1;
    expect(cfg.listen.port).toBe(50000);
    expect(cfg.snapshots.minFreeBytes).toBe(10 * 1024 ** 3);
    expect(cfg.snapshots.minFreePercent).toBe(10);
    expect(cfg.heartbeat.deadAfterSeconds).toBe(30);
    expect(cfg.sourceSettings[0].replicaDatabase).toBe('pgferry_mon_1');
    expect(verifyPassword('from-env', cfg.sourceSettings[0].passwordHash)).toBe(true);
    expect(cfg.ftpDefaultPassword).toBe(true);
    expect(() =>
      resolveServerConfig(parseConfig(serverConfigSchema, { sources: [{ name: 'nopw' }] })),
    ).toThrow(/PGFERRY_SOURCE_PASSWORD_NOPW/);
  });
});
