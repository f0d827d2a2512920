import { describe, expect, test } from 'vitest';
import { BACKFILL_LIMIT, checkRangeSize, readRange, ROLLUP_LIMIT, unitsIn } from '../../src/cli/range.js';

const DAY = 86_400_000;
const NOW = Date.UTC(2026, 11, 7, 12, 0, 0);
const tz = 'Asia/Shanghai';

describe('readRange', () => {
  test('a --to later than now is capped at now, and says so', () => {
    const r = readRange('2026-12-06T00:00:00Z', '9999-01-01', { timezone: tz, latest: NOW });
    expect(r).toEqual({
      from: Date.UTC(2026, 11, 6),
      to: NOW,
      capped: `--to 9999-01-01 is later than now: capped at ${new Date(NOW).toISOString()}`,
    });
  });

  test('a --to before now is kept, without a note; without --from there is none unless defaulted', () => {
    expect(readRange(undefined, '2026-12-01T00:00:00Z', { timezone: tz, latest: NOW })).toEqual({
      from: undefined,
      to: Date.UTC(2026, 11, 1),
    });
    expect(readRange(undefined, undefined, { timezone: tz, latest: NOW, defaultFrom: (to) => to - 7 * DAY })).toEqual({
      from: NOW - 7 * DAY,
      to: NOW,
    });
  });

  test('the capping line names what the end is capped at', () => {
    const r = readRange(undefined, '2027-01-06', {
      timezone: tz,
      latest: NOW - 3_600_000,
      latestName: 'the newest ended and settled hour',
    });
    expect(r.capped).toBe(
      `--to 2027-01-06 is later than the newest ended and settled hour: capped at ${new Date(NOW - 3_600_000).toISOString()}`,
    );
  });

  test('--from at or after the (capped) end is refused naming both', () => {
    expect(() => readRange('2027-02-01T00:00:00Z', '2027-03-01', { timezone: tz, latest: NOW })).toThrow(
      `--from (2027-02-01T00:00:00.000Z) must be before --to (${new Date(NOW).toISOString()})`,
    );
  });

  test('a bad time names the option', () => {
    expect(() => readRange('soon', undefined, { timezone: tz, latest: NOW })).toThrow('--from: expected ISO 8601');
    expect(() => readRange(undefined, '2026-02-30', { timezone: tz, latest: NOW })).toThrow(
      '--to: "2026-02-30" is not a real date and time',
    );
  });
});

describe('checkRangeSize', () => {
  test.each([
    [0, DAY, DAY, 1],
    [0, DAY + 1, DAY, 2],
    [DAY / 2, DAY + DAY / 2, DAY, 2],
    [5, 5, DAY, 0],
  ])('unitsIn(%i, %i, %i) = %i', (from, to, unit, n) => {
    expect(unitsIn(from, to, unit)).toBe(n);
  });

  test('a range within the bounds returns its units', () => {
    const spans = [
      { deviceId: 'a', from: NOW - 30 * DAY, to: NOW },
      { deviceId: 'b', from: NOW - DAY, to: NOW },
    ];
    expect(checkRangeSize(spans, { ...BACKFILL_LIMIT, unitMs: DAY })).toBe(31 + 2);
  });

  test('one device past the per-device bound is refused naming it, the range and the bound', () => {
    const from = Date.UTC(1000, 0, 1);
    expect(() =>
      checkRangeSize(
        [
          { deviceId: 'ok', from: NOW - DAY, to: NOW },
          { deviceId: 'pump 7', from, to: NOW },
        ],
        { ...BACKFILL_LIMIT, unitMs: DAY },
      ),
    ).toThrow(
      /^range too large: device pump 7 from 1000-01-01T00:00:00\.000Z to 2026-12-07T12:00:00\.000Z is 375,080 backfill windows, more than the 3,660 one command takes per device; nothing was queued/,
    );
  });

  test('many devices past the total bound are refused with the count', () => {
    const spans = Array.from({ length: 30 }, (_, i) => ({ deviceId: `d${i}`, from: NOW - 3_000 * DAY, to: NOW }));
    expect(() => checkRangeSize(spans, ROLLUP_LIMIT)).toThrow(
      'range too large: 2,160,000 hours over 30 device(s), more than the 2,000,000 one command takes',
    );
  });
});
