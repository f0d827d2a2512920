/**
 * The timestamp forms read besides the documented `YYYY-MM-DDTHH-mm-ss-SSS` (SPEC §3, liberal in
 * what is read): ISO 8601 with `Z` or an offset (without a zone it is platform-local), and epoch
 * milliseconds or seconds, as JSON numbers or numeric strings. Epoch numbers below 1e11 in size
 * are seconds (1e11 ms is 1973-03-03; 1e11 s is the year 5138), others milliseconds. Whatever
 * is read here is whole milliseconds; a form that says more (sub-millisecond digits in an epoch
 * number) is refused rather than rounded. ISO fractions beyond milliseconds are cut to milliseconds,
 * as InfluxDB stores them.
 */

/** The largest instant a Date holds, in ms either side of 1970. */
const MAX_EPOCH_MS = 8.64e15;
/** Below this size an epoch number is seconds. */
export const EPOCH_SECONDS_BELOW = 1e11;

const NUMERIC = /^[+-]?(?:\d+\.?\d*|\.\d+)$/;
const ISO = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?(Z|[+-]\d{2}(?::?\d{2})?)?$/i;

/** The epoch ms of an epoch number (ms or s, by size), or the problem with it. */
export function fromEpochNumber(n: number): number | string {
  if (!Number.isFinite(n)) return 'not a finite number';
  const seconds = Math.abs(n) < EPOCH_SECONDS_BELOW;
  const ms = seconds ? n * 1000 : n;
  const whole = Math.round(ms);
  // seconds with up to three decimals are whole ms (floating point leaves a tiny remainder)
  if (Math.abs(ms - whole) > (seconds ? 1e-3 : 0))
    return `epoch ${seconds ? 'seconds' : 'milliseconds'} ${n} are not whole milliseconds`;
  if (Math.abs(whole) > MAX_EPOCH_MS) return `epoch milliseconds ${whole} are outside the dates a timestamp can hold`;
  return whole === 0 ? 0 : whole;
}

/**
 * The epoch ms of a trimmed text in one of the other forms, or the problem with it, or undefined
 * when it has none of their shapes. `local` turns a zone-less wall-clock time (given as if it were
 * UTC ms) into the instant in the platform's zone.
 */
export function fromOtherForm(text: string, local: (localAsUtcMs: number) => number): number | string | undefined {
  if (NUMERIC.test(text)) return fromEpochNumber(Number(text));
  const m = ISO.exec(text);
  if (!m) return undefined;
  const [year, month, day, hour, minute] = [m[1], m[2], m[3], m[4], m[5]].map(Number);
  const second = m[6] === undefined ? 0 : Number(m[6]);
  const ms = m[7] === undefined ? 0 : Number(m[7].slice(0, 3).padEnd(3, '0'));
  if (month < 1 || month > 12) return `month ${m[2]} is out of range 01-12`;
  if (day < 1 || day > daysIn(year, month)) return `day ${m[3]} does not exist in ${m[1]}-${m[2]}`;
  if (hour > 23) return `hour ${m[4]} is out of range 00-23`;
  if (minute > 59) return `minute ${m[5]} is out of range 00-59`;
  if (second > 59) return `second ${m[6]} is out of range 00-59`;
  const wall = utc(year, month - 1, day, hour, minute, second, ms);
  const zone = m[8];
  if (zone === undefined) return local(wall);
  if (zone === 'Z' || zone === 'z') return wall;
  const sign = zone[0] === '-' ? -1 : 1;
  const digits = zone.slice(1).replace(':', '');
  const offsetHours = Number(digits.slice(0, 2));
  const offsetMinutes = digits.length > 2 ? Number(digits.slice(2)) : 0;
  if (offsetHours > 23 || offsetMinutes > 59) return `offset ${zone} is out of range (at most ±23:59)`;
  return wall - sign * (offsetHours * 3_600_000 + offsetMinutes * 60_000);
}

/** Date.UTC for every year (Date.UTC reads years 0-99 as 1900-1999). */
function utc(year: number, month0: number, day: number, hour = 0, minute = 0, second = 0, ms = 0): number {
  const d = new Date(Date.UTC(2000, month0, day, hour, minute, second, ms));
  d.setUTCFullYear(year, month0, day);
  return d.getTime();
}

function daysIn(year: number, month: number): number {
  return new Date(utc(year, month, 0)).getUTCDate();
}
