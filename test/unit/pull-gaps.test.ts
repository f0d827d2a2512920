import { describe, expect, test } from 'vitest';
import { estimateCadence, findHoles, gapThreshold, offlineWindows, subtractWindows } from '../../src/pull/gaps.js';

const M = 60_000;

describe('estimateCadence', () => {
  test('median interval, robust to one long hole and duplicates', () => {
    const times = Array.from({ length: 50 }, (_, i) => i * M);
    times.push(200 * M, 201 * M, 201 * M);
    expect(estimateCadence(times, 20)).toBe(M);
  });
  test('too few intervals: unknown', () => {
    expect(estimateCadence([0, M, 2 * M], 20)).toBeUndefined();
    expect(estimateCadence([], 1)).toBeUndefined();
  });
  test('even count takes the mean of the middle two', () => {
    expect(estimateCadence([0, 10, 30], 2)).toBe(15);
  });
});

describe('gapThreshold', () => {
  test.each([
    [M, 10 * M, 150_000],
    [5 * M, 50 * M, 750_000],
    [1000, 10 * M, 150_000],
  ])('cadence %d -> threshold %d, bucket %d', (cadence, threshold, bucket) => {
    expect(gapThreshold(cadence, { cadenceFactor: 10, minGapMs: 10 * M })).toEqual({
      thresholdMs: threshold,
      bucketMs: bucket,
    });
  });
});

describe('findHoles', () => {
  const b = (mins: number[], bucketMin = 1) => mins.map((m) => ({ time: m * M, count: 1 }));
  const opts = { from: 0, to: 100 * M, bucketMs: M, thresholdMs: 10 * M, dataBefore: true };
  test('a hole between data, widened by one bucket', () => {
    const buckets = [...b([...Array(30).keys()]), ...b([60, 61, 62, ...Array.from({ length: 37 }, (_, i) => 63 + i)])];
    expect(findHoles(buckets, opts)).toEqual([{ from: 29 * M, to: 61 * M }]);
  });
  test('short holes are not gaps', () => {
    const buckets = b(Array.from({ length: 100 }, (_, i) => i).filter((i) => i % 5 !== 0));
    expect(findHoles(buckets, opts)).toEqual([]);
  });
  test('empty buckets (count 0, from fill(0)) count as empty', () => {
    const buckets = [...b([0]), ...Array.from({ length: 98 }, (_, i) => ({ time: (i + 1) * M, count: 0 })), ...b([99])];
    expect(findHoles(buckets, opts)).toEqual([{ from: 0, to: 100 * M }]);
  });
  test('leading hole only when the device had data before; trailing hole up to the end', () => {
    const buckets = b([50, 51]);
    expect(findHoles(buckets, { ...opts, dataBefore: false })).toEqual([{ from: 51 * M, to: 100 * M }]);
    expect(findHoles(buckets, opts)).toEqual([
      { from: 0, to: 51 * M },
      { from: 51 * M, to: 100 * M },
    ]);
    expect(findHoles([], { ...opts, dataBefore: false })).toEqual([]);
  });
});

describe('offline windows and subtraction', () => {
  test('offline from false until the next true; open end runs to the range end', () => {
    const s = [
      { time: 10, online: false },
      { time: 12, online: false },
      { time: 20, online: true },
      { time: 30, online: true },
      { time: 40, online: false },
    ];
    expect(offlineWindows(s, 0, 100)).toEqual([
      { from: 10, to: 20 },
      { from: 40, to: 100 },
    ]);
    expect(offlineWindows([{ time: 5, online: true }], 0, 100, false)).toEqual([{ from: 0, to: 5 }]);
  });
  test('subtracts offline time and drops what becomes too short', () => {
    const gaps = [{ from: 0, to: 100 }];
    expect(subtractWindows(gaps, [{ from: 20, to: 30 }], 10)).toEqual([
      { from: 0, to: 20 },
      { from: 30, to: 100 },
    ]);
    expect(subtractWindows(gaps, [{ from: 5, to: 95 }], 10)).toEqual([]);
    expect(subtractWindows(gaps, [{ from: -10, to: 200 }], 1)).toEqual([]);
    expect(subtractWindows(gaps, [], 10)).toEqual(gaps);
  });
});
