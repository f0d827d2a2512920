/** Epoch ms written as the platform writes its timestamps, and as people read them. */
import { DEFAULT_TIMEZONE, wallClock } from './timestamp.js';

const pad = (n: number, width = 2) => String(n).padStart(width, '0');

/** Formats epoch ms as a vendor timestamp in `timezone`: `2017-02-13T12-00-00-000`. */
export function formatPlatformTime(ms: number, timezone: string = DEFAULT_TIMEZONE): string {
  if (!Number.isFinite(ms)) throw new RangeError(`cannot format ${ms} as a platform timestamp: not a finite number`);
  const w = wallClock(Math.trunc(ms), timezone);
  return `${pad(w.year, 4)}-${pad(w.month)}-${pad(w.day)}T${pad(w.hour)}-${pad(w.minute)}-${pad(w.second)}-${pad(w.ms, 3)}`;
}

/** Readable local time for people (CLI, errors): `2017-02-13 12:00:00 Asia/Shanghai`. */
export function formatLocalTime(ms: number, timezone: string = DEFAULT_TIMEZONE): string {
  const w = wallClock(ms, timezone);
  return `${pad(w.year, 4)}-${pad(w.month)}-${pad(w.day)} ${pad(w.hour)}:${pad(w.minute)}:${pad(w.second)} ${timezone}`;
}
