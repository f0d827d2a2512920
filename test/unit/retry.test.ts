import { describe, expect, test } from 'vitest';
import { HttpError, RequestTimedOutError } from '@influxdata/influxdb-client';
import { UnrecoverableError } from 'bullmq';
import { ExpeedError, isRetryable, isRetryableStatus, retryAt, retryVerdict } from '../../src/base/retry.js';
import { backoffDelay, EQUAL_JITTER, NO_JITTER, sleep, type Backoff } from '../../src/base/backoff.js';
import { UnknownDeviceError } from '../../src/base/failure.js';
import { RedisUnreachableError } from '../../src/base/redis.js';
import {
  CredentialsRejectedError,
  DeviceKeyError,
  DeviceNotFoundError,
  DeviceOfflineError,
  InvalidParametersError,
  PlatformProtocolError,
  PlatformUnavailableError,
  SettingOutcomeUnknownError,
  TokenExpiredError,
  UnknownResultCodeError,
} from '../../src/platform/errors.js';
import {
  CredentialsCooldownError,
  TokenBudgetExhaustedError,
  TokenCooldownError,
  TokenWaitTimeoutError,
} from '../../src/platform/token/errors.js';
import { HistoryWalkError } from '../../src/platform/history-walker.js';
import { platformBackoff } from '../../src/platform/platform-request.js';
import { InfluxRejectedError, InfluxUnavailableError } from '../../src/influx/errors.js';
import { influxBackoff } from '../../src/influx/retry-policy.js';
import { NotPlaintextError, PushValidationError } from '../../src/push/push-schema.js';
import { SignatureError } from '../../src/push/signature.js';
import { ReplayError } from '../../src/push/replay.js';
import { EnqueueError } from '../../src/push/ingest-producer.js';
import { ingestBackoff } from '../../src/push/ingest.js';
import { DeadLetterBudgetError } from '../../src/dead-letters/store.js';
import { StatusBudgetError, StatusPollError } from '../../src/pull/status-poll.js';

const unavailable = new PlatformUnavailableError('device_setting', 'HTTP 502', 502);

describe('every error of ours says whether a retry can help', () => {
  test.each<[string, ExpeedError, boolean]>([
    ['TokenExpiredError (before the refresh)', new TokenExpiredError('datapoints', 'x', { afterRefresh: false }), true],
    [
      'TokenExpiredError (fresh token rejected)',
      new TokenExpiredError('datapoints', 'x', { afterRefresh: true }),
      false,
    ],
    [
      'TokenExpiredError (fresh token rejected, budget guards)',
      new TokenExpiredError('datapoints', 'x', { afterRefresh: true, retryable: true }),
      true,
    ],
    ['CredentialsRejectedError', new CredentialsRejectedError('bad'), false],
    ['DeviceNotFoundError', new DeviceNotFoundError('datapoints', 'd1', 'no'), false],
    ['DeviceKeyError', new DeviceKeyError('device_status', 'd1', 'key'), false],
    ['InvalidParametersError', new InvalidParametersError('datapoints', 'query', 3, 'bad'), false],
    ['DeviceOfflineError', new DeviceOfflineError('d1', 'offline'), true],
    ['UnknownResultCodeError', new UnknownResultCodeError('datapoints', 42, '?'), false],
    ['SettingOutcomeUnknownError', new SettingOutcomeUnknownError('d1', unavailable), false],
    ['PlatformUnavailableError', unavailable, true],
    ['PlatformProtocolError', new PlatformProtocolError('datapoints', 'not JSON'), false],
    ['CredentialsCooldownError', new CredentialsCooldownError(5000, 'then', 'bad keys'), false],
    ['TokenCooldownError', new TokenCooldownError(5000, 'then', 'code 1'), true],
    ['TokenBudgetExhaustedError', new TokenBudgetExhaustedError(5000, 'then', 200, 200, 0), true],
    ['TokenWaitTimeoutError', new TokenWaitTimeoutError(100), true],
    ['HistoryWalkError', new HistoryWalkError('d1', 0, 1000, 'cursor stuck'), false],
    ['InfluxUnavailableError', new InfluxUnavailableError('down', 2000), true],
    ['InfluxRejectedError', new InfluxRejectedError('401', 401, 'request'), false],
    ['PushValidationError', new PushValidationError('bad body'), false],
    ['NotPlaintextError', new NotPlaintextError('ciphertext'), false],
    ['SignatureError', new SignatureError('mismatch', 'bad signature'), false],
    ['ReplayError', new ReplayError(), false],
    ['EnqueueError', new EnqueueError('redis down'), true],
    ['DeadLetterBudgetError', new DeadLetterBudgetError(1000), true],
    ['StatusPollError', new StatusPollError([{ deviceId: 'd1', reason: 'HTTP 502' }]), true],
    ['StatusBudgetError', new StatusBudgetError(new Error('spent'), 5000, ['d2']), true],
    ['UnknownDeviceError', new UnknownDeviceError('d1'), false],
    ['RedisUnreachableError', new RedisUnreachableError('127.0.0.1:1', 'ECONNREFUSED'), true],
  ])('%s -> retryable %s', (name, err, retryable) => {
    expect(err).toBeInstanceOf(ExpeedError);
    expect(err.name).toBe(name.split(' ')[0]);
    expect(isRetryable(err)).toBe(retryable);
    expect(retryVerdict(err).declared).toBe(true);
  });

  test('the cause is kept', () => {
    const cause = new Error('socket hang up');
    expect(new InfluxUnavailableError('down', undefined, { cause }).cause).toBe(cause);
    expect(new SettingOutcomeUnknownError('d1', unavailable).cause).toBe(unavailable);
  });
});

describe('retryAt', () => {
  test('a retryable error that knows when a retry can work says so', () => {
    expect(retryAt(new TokenBudgetExhaustedError(1234, 'then', 200, 200, 10))).toBe(1234);
    expect(retryAt(new TokenCooldownError(5678, 'then', 'code 1'))).toBe(5678);
    expect(retryAt(new StatusBudgetError(new Error('spent'), 9999, ['d1']))).toBe(9999);
    expect(retryAt(Object.assign(new Error('plain'), { retryable: true, retryAt: 42 }))).toBe(42);
  });

  test('not for an error that cannot be retried, nor one without a usable instant', () => {
    // the credentials pause ends at 4321, but only an operator's fix makes a retry work
    expect(retryAt(new CredentialsCooldownError(4321, 'then', 'bad keys'))).toBeUndefined();
    expect(retryAt(new PlatformUnavailableError('datapoints', 'HTTP 503', 503))).toBeUndefined();
    expect(retryAt(Object.assign(new Error('x'), { retryable: true, retryAt: Number.NaN }))).toBeUndefined();
    expect(retryAt(Object.assign(new Error('x'), { retryable: true, retryAt: '1234' }))).toBeUndefined();
    expect(retryAt(new Error('x'))).toBeUndefined();
  });
});

describe("libraries' errors", () => {
  test.each<[string, unknown, boolean]>([
    ['BullMQ UnrecoverableError', new UnrecoverableError('malformed job'), false],
    ['InfluxDB HttpError 503', new HttpError(503, 'Service Unavailable'), true],
    ['InfluxDB HttpError 429', new HttpError(429, 'Too Many Requests'), true],
    ['InfluxDB HttpError 408', new HttpError(408, 'Request Timeout'), true],
    ['InfluxDB HttpError 400', new HttpError(400, 'Bad Request'), false],
    ['InfluxDB HttpError 401', new HttpError(401, 'Unauthorized'), false],
    ['InfluxDB RequestTimedOutError', new RequestTimedOutError(), true],
    ['a socket error', Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }), true],
    [
      'fetch failed (undici)',
      new TypeError('fetch failed', {
        cause: Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }),
      }),
      true,
    ],
  ])('%s -> retryable %s', (_name, err, retryable) => {
    expect(retryVerdict(err)).toEqual({ retryable, declared: true });
  });

  test('an error nothing is known about is retried, and says it was not declared', () => {
    for (const err of [
      new Error('bug'),
      new TypeError('x is not a function'),
      new TypeError('fetch failed', { cause: new Error('?') }),
      'text',
      undefined,
      null,
      42,
    ]) {
      expect(retryVerdict(err)).toEqual({ retryable: true, declared: false });
    }
  });

  test('a protocol field wins over the class: what the error says is what counts', () => {
    expect(isRetryable(Object.assign(new Error('x'), { retryable: false, code: 'ECONNRESET' }))).toBe(false);
    expect(isRetryable({ retryable: false })).toBe(false);
  });
});

test.each([
  [200, false],
  [400, false],
  [404, false],
  [408, true],
  [429, true],
  [500, true],
  [503, true],
  [599, true],
])('HTTP %i retryable: %s', (status, retryable) => {
  expect(isRetryableStatus(status)).toBe(retryable);
});

describe('backoffDelay', () => {
  const full: Backoff = { baseMs: 100, maxMs: 1000, jitter: [0, 1] };

  test('doubles from baseMs and stops at maxMs (random at its top)', () => {
    const top = { ...full, random: () => 0.999999 };
    expect([0, 1, 2, 3, 4, 5, 30].map((r) => backoffDelay(r, top))).toEqual([100, 200, 400, 800, 1000, 1000, 1000]);
  });

  test('stays within [low, high] × the ceiling for any random value', () => {
    const bounds: Array<[Backoff['jitter'], number, number]> = [
      [[0, 1], 0, 800],
      [EQUAL_JITTER, 400, 800],
      [[0.8, 1.2], 640, 960],
    ];
    for (const [jitter, lo, hi] of bounds) {
      for (const r of [0, 0.25, 0.5, 0.75, 0.999999]) {
        const d = backoffDelay(3, { ...full, jitter, random: () => r });
        expect(d).toBeGreaterThanOrEqual(lo);
        expect(d).toBeLessThanOrEqual(hi);
      }
      expect(backoffDelay(3, { ...full, jitter, random: () => 0 })).toBe(lo);
    }
  });

  test('the random value picks the point in the range', () => {
    expect(backoffDelay(2, { ...full, jitter: EQUAL_JITTER, random: () => 0.5 })).toBe(300);
    expect(backoffDelay(2, { ...full, jitter: [0.8, 1.2], random: () => 0.25 })).toBe(360);
  });

  test('no jitter: the ceiling itself, and random is not asked', () => {
    const random = () => {
      throw new Error('random must not be called');
    };
    expect(backoffDelay(2, { ...full, jitter: NO_JITTER, random })).toBe(400);
  });

  test('a floor (Retry-After) is never shortened, and does not lower a longer wait', () => {
    expect(backoffDelay(0, { ...full, random: () => 0.5 }, 5000)).toBe(5000);
    expect(backoffDelay(3, { ...full, jitter: NO_JITTER }, 10)).toBe(800);
  });

  test('a zero base, a negative or a huge retry number stay finite numbers', () => {
    expect(backoffDelay(50_000, { ...full, baseMs: 0, jitter: NO_JITTER })).toBe(0);
    expect(backoffDelay(50_000, { ...full, jitter: NO_JITTER })).toBe(1000);
    expect(backoffDelay(-1, { ...full, jitter: NO_JITTER })).toBe(100);
  });

  test('the four users keep their parameters', () => {
    // platform requests: equal jitter from backoffMs, retry counted from 0
    expect(backoffDelay(0, platformBackoff({ backoffMs: 500, maxBackoffMs: 10_000, random: () => 0 }))).toBe(250);
    expect(backoffDelay(5, platformBackoff({ backoffMs: 500, maxBackoffMs: 10_000, random: () => 0.999999 }))).toBe(
      10_000,
    );
    // InfluxDB writes: equal jitter from baseDelayMs
    expect(
      backoffDelay(
        0,
        influxBackoff({ maxAttempts: 8, maxElapsedMs: 60_000, baseDelayMs: 200, maxDelayMs: 10_000 }, () => 0),
      ),
    ).toBe(100);
    // ingest jobs: from 1 s, ±20 %, capped at a minute (BullMQ's attemptsMade counts from 1)
    expect(ingestBackoff(1, () => 0)).toBe(800);
    expect(ingestBackoff(1, () => 0.999999)).toBe(1200);
    expect(ingestBackoff(40, () => 0)).toBe(48_000);
    expect(ingestBackoff(40, () => 0.999999)).toBe(72_000);
  });
});

describe('sleep', () => {
  test('resolves after the wait', async () => {
    await expect(sleep(1)).resolves.toBeUndefined();
  });

  test('ends early with the abort reason', async () => {
    const ac = new AbortController();
    const slept = sleep(60_000, ac.signal);
    ac.abort(new Error('stop'));
    await expect(slept).rejects.toThrow('stop');
  });

  test('an aborted signal rejects at once', async () => {
    await expect(sleep(60_000, AbortSignal.abort(new Error('already')))).rejects.toThrow('already');
  });
});
