import { describe, expect, test } from 'vitest';
import {
  TimestampError,
  localToEpoch,
  parsePlatformTime,
  platformDay,
  zoneOffsetMs,
} from '../../src/platform/timestamp.js';
import { formatLocalTime, formatPlatformTime } from '../../src/platform/time-format.js';

describe('parsePlatformTime', () => {
  test.each([
    // the vendor examples: cursor 1486958400000 is the row 2017-02-13T12-00-00-000 at UTC+8
    ['2017-02-13T12-00-00-000', 'Asia/Shanghai', 1486958400000],
    ['2017-02-13T12-00-01-000', 'Asia/Shanghai', 1486958401000],
    [' 2017-02-13T12-00-00-000', 'Asia/Shanghai', 1486958400000],
    ['2017-02-13T12-00-00-000  ', 'Asia/Shanghai', 1486958400000],
    ['\t2017-02-13T12-00-00-000\n', 'Asia/Shanghai', 1486958400000],
    ['2017-02-13T12-00-00-123', 'Asia/Shanghai', 1486958400123],
    ['2017-02-13T00-00-00-000', 'Asia/Shanghai', Date.UTC(2017, 1, 12, 16)],
    ['2017-02-13T12-00-00-000', 'UTC', Date.UTC(2017, 1, 13, 12)],
    ['2017-02-13T12-00-00-000', 'Europe/Berlin', Date.UTC(2017, 1, 13, 11)],
    ['2017-07-13T12-00-00-000', 'Europe/Berlin', Date.UTC(2017, 6, 13, 10)],
    ['2017-02-13T12-00-00-000', 'America/New_York', Date.UTC(2017, 1, 13, 17)],
    ['2017-02-13T12-00-00-000', 'Asia/Kolkata', Date.UTC(2017, 1, 13, 6, 30)],
    ['2017-02-13T12-00-00-000', 'Asia/Kathmandu', Date.UTC(2017, 1, 13, 6, 15)],
    ['2024-02-29T23-59-59-999', 'Asia/Shanghai', Date.UTC(2024, 1, 29, 15, 59, 59, 999)],
    ['1970-01-01T08-00-00-000', 'Asia/Shanghai', 0],
    // DST gap (02:30 does not exist on 2017-03-12 in New York): offset from before the gap
    ['2017-03-12T02-30-00-000', 'America/New_York', Date.UTC(2017, 2, 12, 7, 30)],
    // DST overlap (01:30 happens twice on 2017-11-05): the earlier instant
    ['2017-11-05T01-30-00-000', 'America/New_York', Date.UTC(2017, 10, 5, 5, 30)],
  ])('%j in %s -> %d', (input, zone, expected) => {
    expect(parsePlatformTime(input, zone)).toBe(expected);
  });

  test.each([
    // ISO 8601: Z or an offset name the instant; without a zone it is platform-local
    ['2017-02-13T04:00:00Z', 'Asia/Shanghai', 1486958400000],
    ['2017-02-13T04:00:00.000Z', 'Asia/Shanghai', 1486958400000],
    ['2017-02-13t04:00:00.123z', 'Asia/Shanghai', 1486958400123],
    ['2017-02-13T04:00:00.123456789Z', 'Asia/Shanghai', 1486958400123],
    ['2017-02-13T04:00:00,5Z', 'Asia/Shanghai', 1486958400500],
    ['2017-02-13T04:00Z', 'Asia/Shanghai', 1486958400000],
    ['2017-02-13T12:00:00+08:00', 'UTC', 1486958400000],
    ['2017-02-13T12:00:00+0800', 'UTC', 1486958400000],
    ['2017-02-13T12:00:00+08', 'UTC', 1486958400000],
    ['2017-02-13T01:30:00-02:30', 'UTC', 1486958400000],
    ['2017-02-13T12:00:00', 'Asia/Shanghai', 1486958400000],
    ['2017-02-13 12:00:00', 'Asia/Shanghai', 1486958400000],
    ['2017-02-13T12:00:00.000', 'Europe/Berlin', Date.UTC(2017, 1, 13, 11)],
    ['2017-11-05T01:30:00', 'America/New_York', Date.UTC(2017, 10, 5, 5, 30)],
    ['  2017-02-13T04:00:00Z ', 'Asia/Shanghai', 1486958400000],
    ['0050-06-01T00:00:00Z', 'UTC', Date.UTC(2050, 5, 1) - 146_097 * 86_400_000 * 5],
    // epoch numbers as numeric strings: seconds below 1e11, milliseconds above
    ['1486958400000', 'Asia/Shanghai', 1486958400000],
    [' 1486958400000 ', 'Asia/Shanghai', 1486958400000],
    ['1486958400', 'Asia/Shanghai', 1486958400000],
    ['1486958400.123', 'Asia/Shanghai', 1486958400123],
    ['99999999999', 'UTC', 99999999999000],
    ['100000000000', 'UTC', 100000000000],
    ['0', 'UTC', 0],
    ['-86400', 'UTC', -86400000],
    ['+1486958400', 'UTC', 1486958400000],
  ])('%j in %s -> %d', (input, zone, expected) => {
    expect(parsePlatformTime(input, zone)).toBe(expected);
  });

  test.each([
    [1486958400000, 1486958400000],
    [1486958400, 1486958400000],
    [1486958400.5, 1486958400500],
    [1486958400.123, 1486958400123],
    [99999999999, 99999999999000],
    [1e11, 1e11],
    [0, 0],
    [-0, 0],
    [-1486958400, -1486958400000],
  ])('the JSON number %d -> %d (seconds below 1e11)', (input, expected) => {
    expect(Object.is(parsePlatformTime(input, 'Asia/Shanghai'), expected)).toBe(true);
  });

  test('the documented form still wins over its own hour cache and across forms', () => {
    // an hour cached by the documented form does not change what another form of it reads
    expect(parsePlatformTime('2017-02-13T12-59-59-999', 'Asia/Shanghai')).toBe(1486961999999);
    expect(parsePlatformTime('2017-02-13T12:59:59.999', 'Asia/Shanghai')).toBe(1486961999999);
    expect(parsePlatformTime('2017-02-13T12:59:59.999Z', 'Asia/Shanghai')).toBe(1486990799999);
  });

  test('defaults to Asia/Shanghai', () => {
    expect(parsePlatformTime('2017-02-13T12-00-00-000')).toBe(1486958400000);
  });

  test.each([
    ['', 'empty'],
    ['   ', 'empty'],
    ['2017-02-13T12-00-00', 'expected the form YYYY-MM-DDTHH-mm-ss-SSS'],
    ['2017-02-13T12-00-00', 'ISO 8601 or epoch milliseconds or seconds'],
    ['2017-02-13T12-00-00-000Z', 'expected the form'],
    ['2017-2-13T12-00-00-000', 'expected the form'],
    ['x2017-02-13T12-00-00-000', 'expected the form'],
    ['2017-13-01T00-00-00-000', 'month 13 is out of range'],
    ['2017-00-01T00-00-00-000', 'month 00 is out of range'],
    ['2017-02-29T00-00-00-000', 'day 29 does not exist in 2017-02'],
    ['2017-04-31T00-00-00-000', 'day 31 does not exist in 2017-04'],
    ['2017-02-00T00-00-00-000', 'day 00 does not exist'],
    ['2017-02-13T24-00-00-000', 'hour 24 is out of range'],
    ['2017-02-13T12-60-00-000', 'minute 60 is out of range'],
    ['2017-02-13T12-00-60-000', 'second 60 is out of range'],
    ['now', 'expected the form'],
    ['2017-02-13T12:00:00+24:00', 'offset +24:00 is out of range'],
    ['2017-02-30T12:00:00Z', 'day 30 does not exist in 2017-02'],
    ['2017-02-13T25:00:00Z', 'hour 25 is out of range'],
    ['2017-02-13T12:61Z', 'minute 61 is out of range'],
    ['2017-02-13T12:00:60Z', 'second 60 is out of range'],
    ['2017-02-13T12:00:00 Z', 'expected the form'],
    ['1486958400000.5', 'epoch milliseconds 1486958400000.5 are not whole milliseconds'],
    ['1486958400.0005', 'epoch seconds 1486958400.0005 are not whole milliseconds'],
    ['9e15', 'expected the form'],
    ['9000000000000000', 'outside the dates a timestamp can hold'],
    ['1,486,958,400', 'expected the form'],
  ])('%j is refused: %s', (input, problem) => {
    let err: unknown;
    try {
      parsePlatformTime(input, 'Asia/Shanghai');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TimestampError);
    expect((err as TimestampError).message).toContain(problem);
    expect((err as TimestampError).message).toContain(JSON.stringify(input));
    expect((err as TimestampError).input).toBe(input);
  });

  test.each([
    [undefined, '(missing)'],
    [null, 'null'],
    [{ t: 1 }, '{"t":1}'],
    [true, 'true'],
    [Number.NaN, 'not a finite number'],
    [Number.POSITIVE_INFINITY, 'not a finite number'],
    [1486958400000.25, 'not whole milliseconds'],
  ])('non-string %j is refused, never read as now', (input, shown) => {
    expect(() => parsePlatformTime(input, 'Asia/Shanghai')).toThrow(TimestampError);
    expect(() => parsePlatformTime(input, 'Asia/Shanghai')).toThrow(shown);
  });

  test('an unknown zone is a clear error', () => {
    expect(() => parsePlatformTime('2017-02-13T12-00-00-000', 'Mars/Olympus')).toThrow(
      'unknown time zone "Mars/Olympus"',
    );
  });
});

describe('formatPlatformTime', () => {
  test.each([
    [1486958400000, 'Asia/Shanghai', '2017-02-13T12-00-00-000'],
    [1486958400123, 'Asia/Shanghai', '2017-02-13T12-00-00-123'],
    [0, 'Asia/Shanghai', '1970-01-01T08-00-00-000'],
    [1486958400000, 'UTC', '2017-02-13T04-00-00-000'],
    [Date.UTC(2017, 6, 13, 10), 'Europe/Berlin', '2017-07-13T12-00-00-000'],
    [Date.UTC(2017, 1, 13, 6, 15), 'Asia/Kathmandu', '2017-02-13T12-00-00-000'],
  ])('%d in %s -> %s', (ms, zone, expected) => {
    expect(formatPlatformTime(ms, zone)).toBe(expected);
    expect(parsePlatformTime(expected, zone)).toBe(ms);
  });

  test('round-trips every hour of a year with DST, outside the overlap', () => {
    const zone = 'Europe/Berlin';
    let checked = 0;
    for (let t = Date.UTC(2023, 0, 1); t < Date.UTC(2024, 0, 1); t += 3_600_000 + 1234) {
      const text = formatPlatformTime(t, zone);
      const back = parsePlatformTime(text, zone);
      // in the autumn overlap the earlier instant is chosen by design
      if (back !== t) expect(back).toBe(t - 3_600_000);
      else checked++;
    }
    expect(checked).toBeGreaterThan(8700);
  });

  test('refuses a non-finite instant', () => {
    expect(() => formatPlatformTime(Number.NaN, 'Asia/Shanghai')).toThrow('not a finite number');
  });
});

describe('platform day', () => {
  test.each([
    // 15:59:59.999 UTC is 23:59:59.999 in Shanghai; 16:00 UTC is the next Shanghai day
    [
      Date.UTC(2024, 4, 1, 15, 59, 59, 999),
      'Asia/Shanghai',
      '2024-05-01',
      Date.UTC(2024, 3, 30, 16),
      Date.UTC(2024, 4, 1, 16),
    ],
    [Date.UTC(2024, 4, 1, 16), 'Asia/Shanghai', '2024-05-02', Date.UTC(2024, 4, 1, 16), Date.UTC(2024, 4, 2, 16)],
    [Date.UTC(2024, 4, 1, 23), 'UTC', '2024-05-01', Date.UTC(2024, 4, 1), Date.UTC(2024, 4, 2)],
    // the day DST starts in New York has 23 hours
    [Date.UTC(2024, 2, 10, 12), 'America/New_York', '2024-03-10', Date.UTC(2024, 2, 10, 5), Date.UTC(2024, 2, 11, 4)],
  ])('%d in %s is %s [%d, %d)', (ms, zone, day, start, end) => {
    expect(platformDay(ms, zone)).toEqual({ day, start, end });
  });

  test('offsets and readable local time', () => {
    expect(zoneOffsetMs(0, 'Asia/Shanghai')).toBe(8 * 3_600_000);
    expect(zoneOffsetMs(Date.UTC(2024, 6, 1), 'America/New_York')).toBe(-4 * 3_600_000);
    expect(formatLocalTime(Date.UTC(2024, 4, 1, 16), 'Asia/Shanghai')).toBe('2024-05-02 00:00:00 Asia/Shanghai');
  });
});

describe('parsePlatformTime: the per-hour fast path gives exactly what the full parse gives', () => {
  const pad = (n: number, w = 2) => String(n).padStart(w, '0');
  test.each([
    ['Europe/Berlin', Date.UTC(2026, 2, 29), Date.UTC(2026, 9, 25)],
    ['America/New_York', Date.UTC(2026, 2, 8), Date.UTC(2026, 10, 1)],
    ['Australia/Lord_Howe', Date.UTC(2026, 3, 5), Date.UTC(2026, 9, 4)],
    ['Asia/Kathmandu', Date.UTC(2026, 0, 1), Date.UTC(2026, 5, 1)],
    ['Asia/Shanghai', Date.UTC(2026, 10, 26), Date.UTC(2026, 11, 31)],
  ])('%s around its transitions', (zone, dayA, dayB) => {
    let checked = 0;
    for (const day of [dayA, dayB]) {
      // every 7 minutes and 13 seconds of the local day, gap and overlap times included
      for (let local = day; local < day + 86_400_000; local += 433_017) {
        const d = new Date(local);
        const text = `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}T${pad(d.getUTCHours())}-${pad(d.getUTCMinutes())}-${pad(d.getUTCSeconds())}-${pad(d.getUTCMilliseconds(), 3)}`;
        const expected = localToEpoch(local, zone);
        expect(parsePlatformTime(text, zone)).toBe(expected);
        expect(parsePlatformTime(text, zone)).toBe(expected); // the second read may take the cached hour
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(390);
  });

  test('a cached hour does not let a bad minute, second or digit through', () => {
    expect(parsePlatformTime('2026-11-26T10-00-00-000', 'Asia/Shanghai')).toBe(Date.UTC(2026, 10, 26, 2));
    for (const bad of [
      '2026-11-26T10-60-00-000',
      '2026-11-26T10-00-60-000',
      '2026-11-26T10-0x-00-000',
      '2026-11-26T10-00-00-0a0',
      '2026-11-26T10:00-00-000',
    ]) {
      expect(() => parsePlatformTime(bad, 'Asia/Shanghai')).toThrow(TimestampError);
    }
  });
});

describe('years 0000-0099 (Date.UTC would read them as 1900-1999)', () => {
  /** epoch ms of a UTC calendar time in any year, computed without Date.UTC's two-digit rule */
  const utc = (year: number, month0: number, day: number, hour = 0): number => {
    const d = new Date(0);
    d.setUTCFullYear(year, month0, day);
    d.setUTCHours(hour, 0, 0, 0);
    return d.getTime();
  };
  // Asia/Shanghai used local mean time (+08:05:43) before 1901
  const LMT = (8 * 3600 + 5 * 60 + 43) * 1000;

  test.each([
    ['0050-06-01T00-00-00-000', 'UTC', utc(50, 5, 1)],
    ['0000-02-29T12-00-00-000', 'UTC', utc(0, 1, 29, 12)],
    ['0099-12-31T23-00-00-000', 'UTC', utc(99, 11, 31, 23)],
    ['0100-01-01T00-00-00-000', 'UTC', utc(100, 0, 1)],
    ['0050-06-01T00-00-00-000', 'Asia/Shanghai', utc(50, 5, 1) - LMT],
    ['0001-01-01T00-00-00-000', 'Asia/Shanghai', utc(1, 0, 1) - LMT],
  ])('%s in %s is parsed, and formatted back', (text, zone, ms) => {
    expect(parsePlatformTime(text, zone)).toBe(ms);
    // twice: the second read comes from the known-hour cache
    expect(parsePlatformTime(text, zone)).toBe(ms);
    expect(formatPlatformTime(ms, zone)).toBe(text);
  });

  test('leap days follow the year itself, not 19xx (0000 is a leap year, 1900 is not; 0001 is not)', () => {
    expect(() => parsePlatformTime('0000-02-29T00-00-00-000', 'UTC')).not.toThrow();
    expect(() => parsePlatformTime('0004-02-29T00-00-00-000', 'UTC')).not.toThrow();
    expect(() => parsePlatformTime('0001-02-29T00-00-00-000', 'UTC')).toThrow('day 29 does not exist in 0001-02');
  });

  test('the platform day and local time of an instant in year 50', () => {
    const ms = utc(50, 5, 1, 12);
    expect(platformDay(ms, 'UTC')).toEqual({ day: '0050-06-01', start: utc(50, 5, 1), end: utc(50, 5, 2) });
    expect(formatLocalTime(ms, 'UTC')).toBe('0050-06-01 12:00:00 UTC');
    expect(zoneOffsetMs(ms, 'Asia/Shanghai')).toBe(LMT);
  });
});
