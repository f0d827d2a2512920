/**
 * Retry of dead letters of kind 'point': the kept point is written again through the writer it is
 * given — the app's one write path, so its hour's rollup is marked like after any other write. The
 * letter goes away only when every value of the point is now accepted; a value still refused (a
 * field type conflict not yet resolved, a NaN) keeps the letter, with InfluxDB's reason.
 */
import { MEASUREMENT, type DeadLetter, type PointWriter, type SinkPoint } from '../influx/api.js';
import type { RetryHandler } from './store.js';

const MEASUREMENTS: readonly string[] = Object.values(MEASUREMENT);

/** The SinkPoint kept in a letter, or a clear error naming what is wrong with it. */
export function pointOfLetter(letter: DeadLetter): SinkPoint {
  const p = letter.raw as Partial<SinkPoint> | null;
  if (p === null || typeof p !== 'object') throw new Error(`dead letter ${letter.id}: raw content is not a point`);
  if (!MEASUREMENTS.includes(p.measurement as string))
    throw new Error(`dead letter ${letter.id}: unknown measurement ${JSON.stringify(p.measurement)}`);
  if (typeof p.time !== 'number' || p.fields === null || typeof p.fields !== 'object') {
    throw new Error(`dead letter ${letter.id}: raw content lacks a numeric time or a fields object`);
  }
  return p as SinkPoint;
}

export function retryPoint(writer: Pick<PointWriter, 'write'>): RetryHandler {
  return async (letter) => {
    // not set aside again: a refusal keeps this letter (with its attempt counted), not a new one
    const result = await writer.write([pointOfLetter(letter)], { source: letter.source, setAside: false });
    if (result.rejected?.length) throw new Error(result.rejected.map((r) => r.reason).join('; '));
  };
}
