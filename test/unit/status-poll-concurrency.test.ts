import { describe, expect, test } from 'vitest';
import { MAX_STATUS_POLL_CONCURRENCY, statusPollConcurrency } from '../../src/pull/status-poll.js';

describe('status poll lanes from the request rate', () => {
  test('enough lanes to keep the rate busy up to a 500 ms round trip, at least 8, at most one chunk', () => {
    expect(statusPollConcurrency(1)).toBe(8);
    expect(statusPollConcurrency(16)).toBe(8);
    // the default rate: 10 lanes reach 20/s with any round trip up to 500 ms (8 would stop at 400 ms)
    expect(statusPollConcurrency(20)).toBe(10);
    expect(statusPollConcurrency(21)).toBe(11);
    expect(statusPollConcurrency(100)).toBe(50);
    expect(statusPollConcurrency(200)).toBe(MAX_STATUS_POLL_CONCURRENCY);
    expect(statusPollConcurrency(5000)).toBe(MAX_STATUS_POLL_CONCURRENCY);
    for (const rate of [1, 7, 20, 33, 150, 199]) {
      const lanes = statusPollConcurrency(rate);
      // lanes / 0.5 s >= rate, unless capped at one chunk
      expect(lanes * 2 >= rate || lanes === MAX_STATUS_POLL_CONCURRENCY).toBe(true);
    }
  });

  test('a rate below one a second is refused, naming it', () => {
    expect(() => statusPollConcurrency(0)).toThrow(/request rate must be >= 1 a second, got 0/);
    expect(() => statusPollConcurrency(Number.NaN)).toThrow(/got NaN/);
  });
});
