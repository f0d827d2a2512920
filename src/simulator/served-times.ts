/**
 * The form of the timestamps the simulator serves (option `timestampForm`), in history rows,
 * currentDatapoints and data pushes alike, each a reading of what a platform may send:
 * - `documented` (default): the vendor's `YYYY-MM-DDTHH-mm-ss-SSS`, platform-local, no zone;
 * - `epoch-ms`: epoch milliseconds as a JSON number (`1775001600123`);
 * - `epoch-s`: epoch seconds as a JSON number, milliseconds as its decimals (`1775001600.123`,
 *   a whole second without them);
 * - `epoch-ms-string`: epoch milliseconds as a numeric string (`"1775001600123"`);
 * - `iso-z`: ISO 8601 in UTC (`2026-04-01T00:00:00.123Z`);
 * - `iso-offset`: ISO 8601 in the platform's zone with its offset (`2026-04-01T08:00:00.123+08:00`);
 * - `iso-local`: ISO 8601 in the platform's zone without a zone (`2026-04-01T08:00:00.123`).
 * Every form carries the row's exact millisecond.
 */
import type { TimestampForm } from './types.js';
import type { VendorClock } from './vendor-time.js';

export const TIMESTAMP_FORMS: readonly TimestampForm[] = [
  'documented',
  'epoch-ms',
  'epoch-s',
  'epoch-ms-string',
  'iso-z',
  'iso-offset',
  'iso-local',
];

/** The timestamp of a row at `t` (epoch ms) as the form puts it on the wire. */
export function servedTime(clock: VendorClock, form: TimestampForm, t: number): string | number {
  switch (form) {
    case 'documented':
      return clock.format(t);
    case 'epoch-ms':
      return t;
    case 'epoch-s':
      return t / 1000;
    case 'epoch-ms-string':
      return String(t);
    case 'iso-z':
      return new Date(t).toISOString();
    case 'iso-offset': {
      const offset = clock.offsetAt(t);
      return `${localIso(t, offset)}${offsetText(offset)}`;
    }
    case 'iso-local':
      return localIso(t, clock.offsetAt(t));
  }
}

/** `YYYY-MM-DDTHH:mm:ss.SSS` of the wall clock `offset` ms from UTC. */
function localIso(t: number, offset: number): string {
  return new Date(t + offset).toISOString().slice(0, -1);
}

/** `+08:00`, `-05:00`, `+05:45` */
function offsetText(offset: number): string {
  const minutes = Math.round(Math.abs(offset) / 60_000);
  const hh = String(Math.floor(minutes / 60)).padStart(2, '0');
  const mm = String(minutes % 60).padStart(2, '0');
  return `${offset < 0 ? '-' : '+'}${hh}:${mm}`;
}
