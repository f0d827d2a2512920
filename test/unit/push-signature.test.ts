import { describe, expect, test } from 'vitest';
import { parsePlatformTime } from '../../src/platform/timestamp.js';
import {
  computeSignature,
  parseSignatureTimestamp,
  SignatureError,
  verifySignature,
} from '../../src/push/signature.js';
import { isRetryable } from '../../src/base/retry.js';

// computed independently: printf 'tok-secret-1abc1231700000000' | sha1sum | (hex) | md5sum
const VECTOR = {
  token: 'tok-secret-1',
  nonce: 'abc123',
  timestamp: '1700000000',
  signature: 'd89dbef6cf4d1c8597da3ba3c709083f',
};
const NOW = 1_700_000_000_000;
const opts = { token: VECTOR.token, windowSec: 300, now: NOW };

function problemOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(SignatureError);
    expect(isRetryable(err)).toBe(false);
    return (err as SignatureError).problem;
  }
  return 'accepted';
}

describe('computeSignature', () => {
  test('is MD5 over the SHA-1 hex of token + nonce + timestamp', () => {
    expect(computeSignature(VECTOR.token, VECTOR.nonce, VECTOR.timestamp)).toBe(VECTOR.signature);
  });
});

describe('verifySignature', () => {
  test('a good signature returns the nonce', () => {
    expect(verifySignature(VECTOR, opts)).toBe('abc123');
  });

  test('upper-case hex is the same signature', () => {
    expect(verifySignature({ ...VECTOR, signature: VECTOR.signature.toUpperCase() }, opts)).toBe('abc123');
  });

  test('timestamps in milliseconds are accepted too', () => {
    const ts = String(NOW + 1234);
    const signature = computeSignature(VECTOR.token, 'n1', ts);
    expect(verifySignature({ signature, nonce: 'n1', timestamp: ts }, opts)).toBe('n1');
  });

  test.each([
    ['wrong signature', { ...VECTOR, signature: 'd89dbef6cf4d1c8597da3ba3c709083e' }, 'mismatch'],
    [
      'signature of another token',
      { ...VECTOR, signature: computeSignature('other', VECTOR.nonce, VECTOR.timestamp) },
      'mismatch',
    ],
    ['short signature', { ...VECTOR, signature: 'abc' }, 'mismatch'],
    ['missing signature', { nonce: VECTOR.nonce, timestamp: VECTOR.timestamp }, 'missing'],
    ['missing nonce', { signature: VECTOR.signature, timestamp: VECTOR.timestamp }, 'missing'],
    ['missing timestamp', { signature: VECTOR.signature, nonce: VECTOR.nonce }, 'missing'],
    ['repeated signature parameter', { ...VECTOR, signature: [VECTOR.signature, VECTOR.signature] }, 'missing'],
    ['timestamp not a number', { ...VECTOR, timestamp: '2023-11-14' }, 'bad-timestamp'],
  ])('%s is refused', (_name, params, problem) => {
    expect(problemOf(() => verifySignature(params, opts))).toBe(problem);
  });

  test('a replayed handshake (timestamp outside the window) is refused even with a valid signature', () => {
    const old = String(NOW / 1000 - 301);
    const signature = computeSignature(VECTOR.token, 'n', old);
    expect(problemOf(() => verifySignature({ signature, nonce: 'n', timestamp: old }, opts))).toBe('stale');
    const edge = String(NOW / 1000 - 299);
    expect(
      verifySignature({ signature: computeSignature(VECTOR.token, 'n', edge), nonce: 'n', timestamp: edge }, opts),
    ).toBe('n');
  });

  test('a timestamp from the future beyond the window is refused', () => {
    const future = String(NOW / 1000 + 3600);
    expect(
      problemOf(() =>
        verifySignature(
          { signature: computeSignature(VECTOR.token, 'n', future), nonce: 'n', timestamp: future },
          opts,
        ),
      ),
    ).toBe('stale');
  });

  test('without a configured token nothing is accepted', () => {
    expect(problemOf(() => verifySignature(VECTOR, { ...opts, token: undefined }))).toBe('no-token');
  });

  test('error messages never contain the token', () => {
    try {
      verifySignature({ ...VECTOR, signature: 'x'.repeat(32) }, opts);
    } catch (err) {
      expect((err as Error).message).not.toContain(VECTOR.token);
    }
  });
});

describe('parseSignatureTimestamp', () => {
  test.each([
    ['1700000000', 1_700_000_000_000],
    ['1700000000123', 1_700_000_000_123],
    ['1700000000.5', 1_700_000_000_500],
    ['', undefined],
    ['-5', undefined],
    ['1e9', undefined],
    ['12345678901234567', undefined],
  ])('%s -> %s', (raw, ms) => {
    expect(parseSignatureTimestamp(raw)).toBe(ms);
  });
});

describe('timestamp forms and the window', () => {
  const TZ = 'Asia/Shanghai';
  const parseTime = (raw: string) => parsePlatformTime(raw, TZ);

  test("the platform's own form (platform-local) is accepted, and signed exactly as received", () => {
    // NOW is 2023-11-14T22:13:20Z = 2023-11-15 06:13:20 in Shanghai
    const ts = '2023-11-15T06-13-20-000';
    const signature = computeSignature(VECTOR.token, 'n-p', ts);
    expect(verifySignature({ signature, nonce: 'n-p', timestamp: ts }, { ...opts, parseTime })).toBe('n-p');
    expect(parseSignatureTimestamp(ts, parseTime)).toBe(NOW);
    // an hour off in that form is stale like any other
    const old = '2023-11-15T05-13-20-000';
    expect(
      problemOf(() =>
        verifySignature(
          { signature: computeSignature(VECTOR.token, 'n-p', old), nonce: 'n-p', timestamp: old },
          { ...opts, parseTime },
        ),
      ),
    ).toBe('stale');
    // not a valid wall-clock time: a format problem
    const bad = '2023-13-15T06-13-20-000';
    expect(
      problemOf(() =>
        verifySignature(
          { signature: computeSignature(VECTOR.token, 'n-p', bad), nonce: 'n-p', timestamp: bad },
          { ...opts, parseTime },
        ),
      ),
    ).toBe('bad-timestamp');
  });

  test('a window of 0 turns the freshness check off (the signature is still checked)', () => {
    const old = String(NOW / 1000 - 30 * 86_400);
    const signature = computeSignature(VECTOR.token, 'n-old', old);
    expect(problemOf(() => verifySignature({ signature, nonce: 'n-old', timestamp: old }, opts))).toBe('stale');
    expect(verifySignature({ signature, nonce: 'n-old', timestamp: old }, { ...opts, windowSec: 0 })).toBe('n-old');
    expect(
      problemOf(() =>
        verifySignature({ signature: 'f'.repeat(32), nonce: 'n-old', timestamp: old }, { ...opts, windowSec: 0 }),
      ),
    ).toBe('mismatch');
  });
});
