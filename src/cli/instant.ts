import { localToEpoch } from '../platform/timestamp.js';

const ISO = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,3})\d*)?)?)?(Z|[+-]\d{2}:?\d{2})?$/i;

/**
 * Reads a time given on the command line: ISO 8601 with a zone (`2026-01-02T03:00:00Z`,
 * `…+08:00`) is that instant; without one (`2026-01-02`, `2026-01-02T08:30`) it is wall-clock
 * time in the platform zone, as the platform itself writes times.
 */
export function parseInstant(text: string, timezone: string, what = 'time'): number {
  const m = ISO.exec(text.trim());
  if (!m)
    throw new Error(
      `${what}: expected ISO 8601 such as 2026-01-02, 2026-01-02T08:30 or 2026-01-02T08:30:00+08:00, got "${text}"`,
    );
  const [, y, mo, d, h = '00', mi = '00', s = '00', ms = '0', zone] = m;
  const local = Date.UTC(
    Number(y),
    Number(mo) - 1,
    Number(d),
    Number(h),
    Number(mi),
    Number(s),
    Number(ms.padEnd(3, '0')),
  );
  const check = new Date(local);
  if (
    check.getUTCMonth() !== Number(mo) - 1 ||
    check.getUTCDate() !== Number(d) ||
    Number(h) > 23 ||
    Number(mi) > 59 ||
    Number(s) > 59
  ) {
    throw new Error(`${what}: "${text}" is not a real date and time`);
  }
  if (!zone) return localToEpoch(local, timezone);
  if (zone.toUpperCase() === 'Z') return local;
  const z = /^([+-])(\d{2}):?(\d{2})$/.exec(zone)!;
  const offset = (Number(z[2]) * 60 + Number(z[3])) * 60_000 * (z[1] === '-' ? -1 : 1);
  return local - offset;
}
