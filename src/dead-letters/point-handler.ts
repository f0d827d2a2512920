/**
 * Retry handler for dead letters of kind 'point': writes the kept point again through the writer.
 * The letter goes away only when every value of the point is now accepted; a value still refused
 * (a field type conflict not yet resolved, a NaN) keeps the letter, with the writer's reason.
 */
import { MEASUREMENT, type DeadLetter, type SinkPoint } from '../influx/api.js';
import type { InfluxPointWriter } from '../influx/point-writer.js';
import type { RetryHandler } from './store.js';

const MEASUREMENTS: readonly string[] = Object.values(MEASUREMENT);

/** The SinkPoint kept in a letter, or a clear error naming what is wrong with it. */
export function pointOfLetter(letter: DeadLetter): SinkPoint {
  const p = letter.raw as Partial<SinkPoint> | null;
  if (p === null || typeof p !== 'object') throw new Error(`dead letter ${letter.id}: raw content is not a point`);
  if (!MEASUREMENTS.includes(p.measurement as string)) throw new Error(`dead letter ${letter.id}: unknown measurement ${JSON.stringify(p.measurement)}`);
  if (typeof p.time !== 'number' || p.fields === null || typeof p.fields !== 'object') {
    throw new Error(`dead letter ${letter.id}: raw content lacks a numeric time or a fields object`);
  }
  return p as SinkPoint;
}

export function pointRetryHandler(writer: Pick<InfluxPointWriter, 'writeDetailed'>): RetryHandler {
  return async (letter) => {
    const result = await writer.writeDetailed([pointOfLetter(letter)]);
    if (result.rejected.length > 0) throw new Error(result.rejected.map((r) => r.reason).join('; '));
  };
}
