/**
 * Splitting a history range into backfill windows. Windows sit on a fixed grid (multiples of the
 * window length since the epoch), so that two requests covering the same day produce the same
 * window and therefore the same deduplication id: the same device and window is never queued twice.
 */

export interface Window {
  /** epoch ms, inclusive */
  from: number;
  /** epoch ms, exclusive */
  to: number;
}

/**
 * Splits [from, to) on the window grid; the first and last windows may be partial. `offsetOf`
 * shifts the grid to local time (the zone's UTC offset at an instant), so that one-day windows
 * run from platform-local midnight to midnight.
 */
export function splitWindows(
  from: number,
  to: number,
  windowMs: number,
  offsetOf: (t: number) => number = () => 0,
): Window[] {
  if (!Number.isFinite(from) || !Number.isFinite(to))
    throw new RangeError(`backfill range must be finite, got ${from}..${to}`);
  if (!Number.isInteger(windowMs) || windowMs <= 0)
    throw new RangeError(`window length must be a positive whole number of ms, got ${windowMs}`);
  const out: Window[] = [];
  let start = from;
  while (start < to) {
    const off = offsetOf(start);
    const boundary = (Math.floor((start + off) / windowMs) + 1) * windowMs - off;
    const end = Math.min(boundary, to);
    out.push({ from: start, to: end });
    start = end;
  }
  return out;
}

/**
 * The key of one device window: deduplication id of its job and suffix of its resume position.
 * BullMQ ids must not contain ':' and device ids may contain anything, so the id is base64url.
 */
export function windowKey(deviceId: string, window: Window): string {
  return `bf|${Buffer.from(deviceId, 'utf8').toString('base64url')}|${window.from}|${window.to}`;
}
