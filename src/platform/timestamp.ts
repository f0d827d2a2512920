/**
 * Vendor timestamps <-> epoch ms. The platform writes local wall-clock time without a zone, as
 * `YYYY-MM-DDTHH-mm-ss-SSS` (dashes inside the time); the zone is configured (EXPEED_TIMEZONE,
 * default Asia/Shanghai). The same zone decides the platform day that the token budget counts.
 * ISO 8601 and epoch numbers are read too (timestamp-forms.ts).
 */
import { fromEpochNumber, fromOtherForm } from './timestamp-forms.js';
import { PLATFORM_DEFAULTS } from '../base/config.js';

export const DEFAULT_TIMEZONE = PLATFORM_DEFAULTS.timezone;

/** A vendor timestamp that cannot be read. Never replaced by "now": the row is kept as unreadable. */
export class TimestampError extends Error {
  constructor(
    readonly input: unknown,
    problem: string,
  ) {
    super(`unreadable platform timestamp ${describe(input)}: ${problem}`);
    this.name = 'TimestampError';
  }
}

function describe(input: unknown): string {
  if (typeof input === 'string') return JSON.stringify(input.length > 60 ? `${input.slice(0, 60)}…` : input);
  if (input === undefined) return '(missing)';
  return `${JSON.stringify(input) ?? String(input)} (a ${input === null ? 'null' : typeof input}, expected a string or a number)`;
}

const PATTERN = /^(\d{4})-(\d{2})-(\d{2})T(\d{2})-(\d{2})-(\d{2})-(\d{3})$/;

/**
 * `Date.UTC` for every year: `Date.UTC` itself reads years 0-99 as 1900-1999, which put the
 * vendor's `0050-...` (and the zone offsets around it) 1900 years off.
 */
function utcMs(year: number, month0: number, day = 1, hour = 0, minute = 0, second = 0, ms = 0): number {
  if (year < 0 || year >= 100) return Date.UTC(year, month0, day, hour, minute, second, ms);
  // 400 Gregorian years are exactly 146 097 days, so the calendar (leap days, day overflow) repeats
  return Date.UTC(year + 400, month0, day, hour, minute, second, ms) - GREGORIAN_CYCLE_MS;
}
const GREGORIAN_CYCLE_MS = 146_097 * 86_400_000;

interface WallClock {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
  ms: number;
}

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(timezone: string): Intl.DateTimeFormat {
  let f = formatters.get(timezone);
  if (!f) {
    try {
      f = new Intl.DateTimeFormat('en-US', {
        timeZone: timezone,
        hourCycle: 'h23',
        year: 'numeric',
        month: 'numeric',
        day: 'numeric',
        hour: 'numeric',
        minute: 'numeric',
        second: 'numeric',
        // without the era, 1 BC and AD 1 would both read as year 1
        era: 'short',
      });
    } catch {
      throw new RangeError(`unknown time zone "${timezone}" (use an IANA name such as Asia/Shanghai)`);
    }
    formatters.set(timezone, f);
  }
  return f;
}

/**
 * Offsets are cached per zone and UTC day: a history page of 6000 rows would otherwise call Intl
 * (slow) thousands of times. A day whose offset is the same at both ends has no transition (no
 * zone changes twice within a day); a day with one is cached per quarter hour, on which every
 * real transition since 1970 falls.
 */
interface ZoneCache {
  days: Map<number, number | null>;
  quarters: Map<number, number>;
}
const zoneCaches = new Map<string, ZoneCache>();
const DAY = 86_400_000;
const QUARTER_HOUR = 900_000;
const CACHE_LIMIT = 20_000;

/** The zone's offset from UTC at instant `ms`, in ms (Asia/Shanghai: +28 800 000). */
export function zoneOffsetMs(ms: number, timezone: string): number {
  let cache = zoneCaches.get(timezone);
  if (!cache) {
    cache = { days: new Map(), quarters: new Map() };
    zoneCaches.set(timezone, cache);
  }
  const day = Math.floor(ms / DAY);
  let whole = cache.days.get(day);
  if (whole === undefined) {
    const a = offsetAt(day * DAY, timezone);
    whole = a === offsetAt(day * DAY + DAY - 1000, timezone) ? a : null;
    if (cache.days.size >= CACHE_LIMIT) cache.days.clear();
    cache.days.set(day, whole);
  }
  if (whole !== null) return whole;
  const quarter = Math.floor(ms / QUARTER_HOUR);
  let offset = cache.quarters.get(quarter);
  if (offset === undefined) {
    offset = offsetAt(quarter * QUARTER_HOUR, timezone);
    if (cache.quarters.size >= CACHE_LIMIT) cache.quarters.clear();
    cache.quarters.set(quarter, offset);
  }
  return offset;
}

function offsetAt(at: number, timezone: string): number {
  const p = wallClockParts(at, timezone);
  return utcMs(p.year, p.month - 1, p.day, p.hour, p.minute, p.second) - (at - (((at % 1000) + 1000) % 1000));
}

function wallClockParts(ms: number, timezone: string): WallClock {
  const out = { year: 0, month: 0, day: 0, hour: 0, minute: 0, second: 0, ms: 0 };
  let bc = false;
  for (const part of formatter(timezone).formatToParts(ms)) {
    if (part.type === 'era') bc = part.value === 'BC';
    else if (part.type in out) out[part.type as keyof WallClock] = Number(part.value);
  }
  // astronomical year numbering, as Date uses: 1 BC is year 0
  if (bc) out.year = 1 - out.year;
  out.ms = ((ms % 1000) + 1000) % 1000;
  return out;
}

/** Wall-clock time in `timezone` at instant `ms`. */
export function wallClock(ms: number, timezone: string): WallClock {
  const local = ms + zoneOffsetMs(ms, timezone);
  const d = new Date(local);
  return {
    year: d.getUTCFullYear(),
    month: d.getUTCMonth() + 1,
    day: d.getUTCDate(),
    hour: d.getUTCHours(),
    minute: d.getUTCMinutes(),
    second: d.getUTCSeconds(),
    ms: d.getUTCMilliseconds(),
  };
}

/**
 * The instant at which the clocks of `timezone` show the given local time (given as if it were
 * UTC ms). In an overlap (clocks turned back) the earlier instant is chosen; in a gap (a local time
 * that does not exist) the offset from before the gap is used. Both are deterministic, which is
 * what re-reading the same page needs.
 */
export function localToEpoch(localAsUtcMs: number, timezone: string): number {
  const t0 = localAsUtcMs - zoneOffsetMs(localAsUtcMs, timezone);
  // transitions are months apart, so the offsets a day either side cover every candidate
  const before = zoneOffsetMs(t0 - 86_400_000, timezone);
  let best: number | undefined;
  for (const offset of [before, zoneOffsetMs(t0, timezone), zoneOffsetMs(t0 + 86_400_000, timezone)]) {
    const instant = localAsUtcMs - offset;
    if (zoneOffsetMs(instant, timezone) === offset && (best === undefined || instant < best)) best = instant;
  }
  return best ?? localAsUtcMs - before;
}

/**
 * Parses a vendor timestamp into epoch ms: the documented form (`2017-02-13T12-00-00-000`,
 * platform-local), ISO 8601 (`Z`, an offset, or none = platform-local), or epoch milliseconds or
 * seconds as a number or a numeric string. Leading and trailing whitespace is ignored (one vendor
 * example has a leading space); anything else, or an impossible date or time, throws a TimestampError.
 */
export function parsePlatformTime(input: unknown, timezone: string = DEFAULT_TIMEZONE): number {
  if (typeof input === 'number') {
    const epoch = fromEpochNumber(input);
    if (typeof epoch === 'string') throw new TimestampError(input, epoch);
    return epoch;
  }
  if (typeof input !== 'string') throw new TimestampError(input, 'not a string or a number');
  const text = input.trim();
  const fast = fromKnownHour(text, timezone);
  if (fast !== undefined) return fast;
  const epoch = parseFully(input, text, timezone);
  rememberHour(text, epoch, timezone);
  return epoch;
}

/**
 * Rows of a history page share their hour: the epoch of each local `YYYY-MM-DDTHH` already read
 * (fully validated) is kept per zone, and a timestamp of a known hour only needs its minutes,
 * seconds and milliseconds checked, from character codes without allocating. An hour is kept
 * only when the zone's offset is the same through all of it (no transition inside), so within it
 * the instant moves with the wall clock and the result is exactly what the full parse gives. It
 * takes a history page's parsing from about 1.5 µs to a fraction of that per row.
 */
const hourCaches = new Map<string, Map<number, number>>();
const HOUR_CACHE_LIMIT = 50_000;
const HOUR = 3_600_000;

function digit(text: string, at: number): number {
  const d = text.charCodeAt(at) - 48;
  return d >= 0 && d <= 9 ? d : -1000;
}

/** y*1e6 + m*1e4 + d*100 + h of a text of the exact vendor shape, or -1 */
function hourKey(text: string): number {
  if (text.length !== 23) return -1;
  if (
    text.charCodeAt(4) !== 45 ||
    text.charCodeAt(7) !== 45 ||
    text.charCodeAt(10) !== 84 ||
    text.charCodeAt(13) !== 45 ||
    text.charCodeAt(16) !== 45 ||
    text.charCodeAt(19) !== 45
  )
    return -1;
  const y = digit(text, 0) * 1000 + digit(text, 1) * 100 + digit(text, 2) * 10 + digit(text, 3);
  const mo = digit(text, 5) * 10 + digit(text, 6);
  const d = digit(text, 8) * 10 + digit(text, 9);
  const h = digit(text, 11) * 10 + digit(text, 12);
  if (y < 0 || mo < 0 || d < 0 || h < 0) return -1;
  return y * 1_000_000 + mo * 10_000 + d * 100 + h;
}

function fromKnownHour(text: string, timezone: string): number | undefined {
  const cache = hourCaches.get(timezone);
  if (!cache) return undefined;
  const key = hourKey(text);
  const base = key < 0 ? undefined : cache.get(key);
  if (base === undefined) return undefined;
  const minute = digit(text, 14) * 10 + digit(text, 15);
  const second = digit(text, 17) * 10 + digit(text, 18);
  const ms = digit(text, 20) * 100 + digit(text, 21) * 10 + digit(text, 22);
  if (minute < 0 || minute > 59 || second < 0 || second > 59 || ms < 0) return undefined; // the full parse names the problem
  return base + minute * 60_000 + second * 1000 + ms;
}

function rememberHour(text: string, epoch: number, timezone: string): void {
  const key = hourKey(text);
  if (key < 0) return;
  const base =
    epoch -
    (digit(text, 14) * 10 + digit(text, 15)) * 60_000 -
    (digit(text, 17) * 10 + digit(text, 18)) * 1000 -
    (digit(text, 20) * 100 + digit(text, 21) * 10 + digit(text, 22));
  // the hour is kept only when one offset holds through all of it and is the offset the wall
  // clock actually shows (a time in a spring-forward gap is read with the offset from before it)
  const offset = zoneOffsetMs(base, timezone);
  const localHour = utcMs(
    Math.floor(key / 1_000_000),
    (Math.floor(key / 10_000) % 100) - 1,
    Math.floor(key / 100) % 100,
    key % 100,
  );
  if (key < 100_000_000 || localHour - base !== offset || zoneOffsetMs(base + HOUR - 1, timezone) !== offset) return;
  let cache = hourCaches.get(timezone);
  if (!cache) hourCaches.set(timezone, (cache = new Map()));
  if (cache.size >= HOUR_CACHE_LIMIT) cache.clear();
  cache.set(key, base);
}

function parseFully(input: string, text: string, timezone: string): number {
  if (text === '') throw new TimestampError(input, 'empty');
  const m = PATTERN.exec(text);
  if (!m) {
    const other = fromOtherForm(text, (local) => localToEpoch(local, timezone));
    if (typeof other === 'number') return other;
    throw new TimestampError(
      input,
      other ??
        'expected the form YYYY-MM-DDTHH-mm-ss-SSS (e.g. 2017-02-13T12-00-00-000), ISO 8601 or epoch milliseconds or seconds',
    );
  }
  const [year, month, day, hour, minute, second, ms] = m.slice(1).map(Number);
  if (month < 1 || month > 12) throw new TimestampError(input, `month ${m[2]} is out of range 01-12`);
  const daysInMonth = new Date(utcMs(year, month, 0)).getUTCDate();
  if (day < 1 || day > daysInMonth) throw new TimestampError(input, `day ${m[3]} does not exist in ${m[1]}-${m[2]}`);
  if (hour > 23) throw new TimestampError(input, `hour ${m[4]} is out of range 00-23`);
  if (minute > 59) throw new TimestampError(input, `minute ${m[5]} is out of range 00-59`);
  if (second > 59) throw new TimestampError(input, `second ${m[6]} is out of range 00-59`);
  return localToEpoch(utcMs(year, month - 1, day, hour, minute, second, ms), timezone);
}

const pad = (n: number, width = 2) => String(n).padStart(width, '0');

/** The platform calendar day of instant `ms`, `YYYY-MM-DD`, and when it starts and ends (epoch ms). */
export function platformDay(
  ms: number,
  timezone: string = DEFAULT_TIMEZONE,
): { day: string; start: number; end: number } {
  const w = wallClock(ms, timezone);
  const start = localToEpoch(utcMs(w.year, w.month - 1, w.day), timezone);
  const end = localToEpoch(utcMs(w.year, w.month - 1, w.day + 1), timezone);
  return { day: `${pad(w.year, 4)}-${pad(w.month)}-${pad(w.day)}`, start, end };
}
