import { describe, expect, test } from 'vitest';
import { backoffDelay } from '../../src/base/backoff.js';
import { DEFAULT_RETRY_POLICY, influxBackoff, parseRetryAfter } from '../../src/influx/retry-policy.js';
import { apiOfVersion } from '../../src/influx/api-detect.js';
import { authHeaders, writePath } from '../../src/influx/write-request.js';

const policy = { ...DEFAULT_RETRY_POLICY, baseDelayMs: 100, maxDelayMs: 1000 };

describe("the writer's backoff (attempt counts from 1)", () => {
  test.each([
    [1, 0, 50],
    [1, 1, 100],
    [2, 1, 200],
    [4, 1, 800],
    [5, 1, 1000],
    [9, 0.999999, 1000],
  ])('attempt %i, random %d -> %i ms', (attempt, random, expected) => {
    expect(
      backoffDelay(
        attempt - 1,
        influxBackoff(policy, () => random),
      ),
    ).toBe(expected);
  });

  test.each([
    [1, 5000, 5000],
    [4, 10, 800],
  ])('Retry-After is a floor: attempt %i, retry-after %i -> %i', (attempt, after, expected) => {
    expect(
      backoffDelay(
        attempt - 1,
        influxBackoff(policy, () => 1),
        after,
      ),
    ).toBe(expected);
  });
});

describe('parseRetryAfter', () => {
  const now = Date.parse('2024-01-01T00:00:00Z');
  test.each([
    ['2', 2000],
    [' 0 ', 0],
    [['3'], 3000],
    ['Mon, 01 Jan 2024 00:00:05 GMT', 5000],
    ['Sun, 31 Dec 2023 23:59:00 GMT', 0],
    ['soon', undefined],
    ['', undefined],
    [undefined, undefined],
    [null, undefined],
  ])('%j -> %j', (value, expected) => {
    expect(parseRetryAfter(value as string | string[] | null | undefined, now)).toBe(expected);
  });
});

describe('apiOfVersion', () => {
  test.each([
    ['1.6.7~rc0', 'v1'],
    ['1.8.10', 'v1'],
    ['v2.7.4', 'v2'],
    ['2.0.0', 'v2'],
    ['3.0.1', 'v2'],
    ['', undefined],
    [null, undefined],
    ['cloud2', undefined],
  ])('%j -> %j', (version, api) => {
    expect(apiOfVersion(version)).toBe(api);
  });
});

describe('write target', () => {
  test.each([
    [{ url: 'x', api: 'v1' as const, bucket: 'my db' }, '/write?db=my+db&precision=ms'],
    [
      { url: 'x', api: 'v2' as const, bucket: 'b/1', org: 'acme & co' },
      '/api/v2/write?bucket=b%2F1&precision=ms&org=acme+%26+co',
    ],
    [{ url: 'x', api: 'v2' as const, bucket: 'b' }, '/api/v2/write?bucket=b&precision=ms'],
  ])('path of %j', (target, path) => {
    expect(writePath(target)).toBe(path);
  });

  test.each([
    [
      { api: 'v1' as const, token: 'user:pa:ss' },
      { authorization: `Basic ${Buffer.from('user:pa:ss').toString('base64')}` },
    ],
    [{ api: 'v2' as const, token: 'tok' }, { authorization: 'Token tok' }],
    [{ api: 'v1' as const, token: undefined }, {}],
  ])('headers of %j', (target, headers) => {
    expect(authHeaders(target)).toEqual(headers);
  });
});
