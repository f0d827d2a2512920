import { describe, expect, test } from 'vitest';
import { bar, formatDuration, plainLine, rateAndEta, terminalLines } from '../../src/cli/progress-view.js';
import { failureFacts } from '../../src/base/failure.js';
import {
  DeviceNotFoundError,
  PlatformUnavailableError,
  TokenExpiredError,
  UnknownResultCodeError,
} from '../../src/platform/errors.js';
import {
  budgetResetsAt,
  cooldownUntil,
  CredentialsCooldownError,
  TokenBudgetExhaustedError,
  TokenCooldownError,
} from '../../src/platform/token/errors.js';
import type { ProgressSnapshot } from '../../src/cli/progress.js';

const snap: ProgressSnapshot = {
  devices: [
    {
      deviceId: 'a',
      windows: 2,
      completed: 2,
      failed: 0,
      covered: 100,
      span: 100,
      points: 6000,
      pages: 2,
      unreadable: 0,
      setAside: {},
    },
    {
      deviceId: 'b',
      windows: 2,
      completed: 0,
      failed: 0,
      covered: 0,
      span: 100,
      points: 0,
      pages: 0,
      unreadable: 0,
      setAside: {},
    },
  ],
  total: {
    deviceId: '*',
    windows: 4,
    completed: 2,
    failed: 0,
    covered: 100,
    span: 200,
    points: 6000,
    pages: 2,
    unreadable: 0,
    setAside: {},
  },
  failures: [],
  finished: false,
};

describe('progress view', () => {
  test.each([
    [0, '0s'],
    [59_400, '59s'],
    [61_000, '1m01s'],
    [3_723_000, '1h02m'],
    [Number.NaN, '--'],
  ])('formatDuration(%d) = %s', (ms, text) => expect(formatDuration(ms)).toBe(text));

  test('rate and ETA from the covered share of the range', () => {
    expect(rateAndEta(snap.total, 10_000)).toEqual({ rate: 600, etaMs: 10_000 });
    expect(rateAndEta(snap.devices[1], 10_000).etaMs).toBeNaN();
    expect(rateAndEta(snap.devices[0], 10_000).etaMs).toBe(0);
  });

  test('plain line and terminal lines', () => {
    expect(plainLine(snap, 10_000)).toBe(
      'backfill: 1/2 devices done, 2/4 windows, 6000 points, 2 pages, 600 pts/s, ETA 10s',
    );
    const lines = terminalLines(snap, 10_000, { width: 200, maxDevices: 12 });
    expect(lines).toHaveLength(3);
    expect(lines[0]).toContain(bar(0.5, 40));
    expect(lines[1]).toMatch(/^a {15} \[#{40}\] 100%/);
    expect(terminalLines(snap, 10_000, { width: 200, maxDevices: 1 })).toHaveLength(1);
    expect(terminalLines(snap, 10_000, { width: 60, maxDevices: 12 }).every((l) => l.length < 60)).toBe(true);
  });
});

describe('failure facts', () => {
  test('vendor errors: not retryable, with code and message', () => {
    expect(failureFacts(new DeviceNotFoundError('datapoints', 'x', '设备不存在'))).toEqual({
      retryable: false,
      code: 2,
      vendorMessage: '设备不存在',
      endpoint: 'datapoints',
      marksDevice: true,
    });
  });
  test('an undocumented code or a token problem never marks the device', () => {
    expect(failureFacts(new UnknownResultCodeError('datapoints', 42, '?', 4))).toMatchObject({
      retryable: false,
      code: 42,
      marksDevice: false,
    });
    expect(failureFacts(new TokenExpiredError('datapoints', 'token过期', { afterRefresh: true }))).toMatchObject({
      retryable: false,
      code: 1,
      marksDevice: false,
    });
    expect(failureFacts(new CredentialsCooldownError(1, 'then', 'bad keys'))).toMatchObject({
      retryable: false,
      marksDevice: false,
    });
  });
  test('a token cool-down says when it ends', () => {
    expect(cooldownUntil(new TokenCooldownError(5678, 'then', 'code 1'))).toBe(5678);
    expect(cooldownUntil(new CredentialsCooldownError(4321, 'then', 'bad keys'))).toBe(4321);
    expect(cooldownUntil(new TokenBudgetExhaustedError(1234, 'then', 200, 200, 10))).toBeUndefined();
  });
  test('network and unknown errors are retried', () => {
    expect(failureFacts(new PlatformUnavailableError('datapoints', 'HTTP 503', 503)).retryable).toBe(true);
    expect(failureFacts(new Error('ECONNRESET')).retryable).toBe(true);
    expect(failureFacts(undefined).retryable).toBe(true);
  });
  test('a spent budget says when it resets', () => {
    expect(budgetResetsAt(new TokenBudgetExhaustedError(1234, 'then', 200, 200, 10))).toBe(1234);
    expect(budgetResetsAt(new Error('x'))).toBeUndefined();
  });
});
